"""The task supervisor: the core plus supervised lease managers and grinders.

:class:`TaskSupervisor` is :class:`~.core.SupervisorCore` with two more
methods, :meth:`TaskSupervisor.create_lease_manager` and
:meth:`TaskSupervisor.create_work_grinder`, which build the blocking
facades of :mod:`neoleasepool.sync` and register them as schedulers.  This
is the one module of the package that imports ``sync``; the facades never
import the supervisor (they see it through a protocol).

It also creates the global ``task_supervisor`` (not started) and makes it
the default supervisor of background workers (see :mod:`.default`).
"""

from __future__ import annotations

from typing import Any

from ..loops.aloop import ALoop
from ..sync.factories import create_lease_manager, create_work_grinder
from ..sync.grinder import SupervisedWorkGrinder
from ..sync.manager import SupervisedLeaseManager
from .core import SupervisorCore, SupervisorInfo
from .default import set_default_supervisor

__all__ = ["SupervisorInfo", "TaskSupervisor", "spawn", "spawn_ajob", "task_supervisor"]


class TaskSupervisor(SupervisorCore):
    """The supervisor core (see :class:`~.core.SupervisorCore` for its parts
    and arguments) that also builds supervised lease managers and grinders."""

    def create_lease_manager(
        self, name: str, *, aloop: ALoop | str | None = None, **manager_kwargs: Any
    ) -> SupervisedLeaseManager:
        """Start a :class:`~neoleasepool.LeasedExecutorManager` on an
        aloop and register its blocking facade as a scheduler.

        Args:
            name: The scheduler name (also the default ``name_prefix``).
            aloop: The aloop (or its name) to run on; by default the default
                aloop, else a dedicated aloop ``leasepool_<name>`` that the
                facade owns and stops.
            **manager_kwargs: ``LeasedExecutorManager`` arguments
                (``max_pools`` is required).

        Returns:
            The facade: ``acquire``/``lease``/``run``/``stats``... from sync
            code, ``.manager`` for async code on its loop.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If the name is taken or an argument is invalid.
        """
        return create_lease_manager(self, name, aloop=aloop, **manager_kwargs)

    def create_work_grinder(
        self,
        name: str,
        manager: SupervisedLeaseManager | str,
        *,
        aloop: ALoop | str | None = None,
        **grinder_kwargs: Any,
    ) -> SupervisedWorkGrinder:
        """Start a :class:`~neoleasepool.WorkGrinder` on ``manager``'s
        aloop and register its blocking facade as a scheduler.

        Registered after its manager, the grinder is stopped (drained) before
        it by :meth:`stop`.

        Args:
            name: The scheduler name (also the default ``owner_prefix``).
            manager: A facade from :meth:`create_lease_manager`, or its name.
            aloop: Must be ``None`` or the manager's aloop.
            **grinder_kwargs: ``WorkGrinder`` arguments.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If the name is taken or an argument is invalid.
        """
        return create_work_grinder(self, name, manager, aloop=aloop, **grinder_kwargs)


#: The default supervisor, created (not started) on import.
task_supervisor = TaskSupervisor(id="default")
set_default_supervisor(task_supervisor)

#: ``task_supervisor.spawn``: run a callable in the default supervisor's pool.
spawn = task_supervisor.spawn

#: ``task_supervisor.create_async_job``, under neotasker's name.
spawn_ajob = task_supervisor.create_async_job
