"""The supervisor's observer slot: metrics and the status page.

Metrics and the status page live in :mod:`neoleasepool.observe`, a layer
above the supervisor (they read managers, grinders and workers, which the
supervisor must not import). The supervisor reaches them through this
slot, as workers reach the default supervisor through :mod:`.default`:
the package root plugs the observe layer's factory in when it is
imported, and the supervisor asks the factory for its observer the first
time it needs one. The dependency points from the observe layer to this
protocol, never from the supervisor upwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Observer", "ObserverFactory", "make_observer", "set_observer_factory"]


class Observer(Protocol):
    """What the supervisor asks of its observer."""

    def metrics_text(self) -> str:
        """The supervisor's metrics in Prometheus' text format (any thread
        but an event loop's)."""

    def serve_status(self, port: int, host: str, token: str | None) -> str:
        """Start serving the status page (once); its URL."""

    def close(self) -> None:
        """Stop serving (the supervisor stops); safe to call twice."""


#: Makes the observer of a supervisor (typed ``Any`` here: this module is
#: imported by the supervisor core, and must not import it back).
ObserverFactory = Callable[[Any], Observer]

_factory: ObserverFactory | None = None


def set_observer_factory(factory: ObserverFactory) -> None:
    """Plug in the observe layer (the package root does it on import)."""
    global _factory
    _factory = factory


def make_observer(supervisor: object) -> Observer:
    """A new observer of ``supervisor``.

    Raises:
        RuntimeError: If no observe layer was plugged in, which happens only
            while :mod:`neoleasepool` itself is still being imported.
    """
    if _factory is None:
        raise RuntimeError(
            "no observer yet: import neoleasepool (which plugs in its observe "
            "layer) before asking a supervisor for metrics"
        )
    return _factory(supervisor)
