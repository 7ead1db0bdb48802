"""The default supervisor, as background workers find it.

A worker made without ``supervisor=`` runs under the global
``task_supervisor``.  That object is the full ``TaskSupervisor``, which can
build lease managers and grinders, so its module imports the sync facades
and, through them, the whole leasing core.  Workers need none of that, so
they do not import it: :mod:`.supervisor` puts the global here when it
creates it, and workers read it back as a plain
:class:`~.core.SupervisorCore`.  The dependency points from the full
supervisor to this slot, never from a worker to leasing.
"""

from __future__ import annotations

from .core import SupervisorCore

__all__ = ["default_supervisor", "set_default_supervisor"]

_default: SupervisorCore | None = None


def set_default_supervisor(supervisor: SupervisorCore) -> None:
    """Make ``supervisor`` the one that workers made without ``supervisor=`` use."""
    global _default
    _default = supervisor


def default_supervisor() -> SupervisorCore:
    """The default supervisor (``neoleasepool.task_supervisor``).

    Raises:
        RuntimeError: If none was set, which happens only while
            :mod:`neoleasepool` itself is still being imported.
    """
    if _default is None:
        raise RuntimeError(
            "no default supervisor yet: import neoleasepool (which creates "
            "task_supervisor) before creating a worker, or pass supervisor="
        )
    return _default
