"""Build a facade, start its async core and register it with a supervisor.

The supervisor's ``create_lease_manager`` and ``create_work_grinder`` call
these.  They see the supervisor only through :class:`SupervisorLike`, so
this package never imports the supervisor: the full supervisor imports it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..grinder.facade import WorkGrinder
from ..leasing.manager import LeasedExecutorManager
from ..loops.aloop import ALoop
from .base import FacadeBase
from .grinder import SupervisedWorkGrinder
from .manager import SupervisedLeaseManager

__all__ = ["SupervisorLike", "create_lease_manager", "create_work_grinder"]

logger = logging.getLogger("neoleasepool.supervised")


class SupervisorLike(Protocol):
    """The parts of :class:`TaskSupervisor` the factories below use."""

    @property
    def id(self) -> str: ...

    def require_active(self, what: str) -> None: ...

    def get_schedulers(self) -> dict[str, Any]: ...

    def resolve_aloop(self, spec: ALoop | str | asyncio.AbstractEventLoop | None) -> ALoop: ...

    def get_aloop(self, name: str | None = None, default: bool = True) -> ALoop | None: ...

    def create_aloop(
        self, name: str, daemon: bool = False, start: bool = True, default: bool = False
    ) -> ALoop: ...

    def register_scheduler(self, scheduler: FacadeBase) -> concurrent.futures.Future[Any]: ...


def _check_free_name(supervisor: SupervisorLike, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in supervisor.get_schedulers():
        raise ValueError(
            f"a scheduler named {name!r} is already registered with supervisor "
            f"{supervisor.id!r}; use get_scheduler({name!r}) or another name"
        )


def _start_and_register(
    supervisor: SupervisorLike, facade: FacadeBase, start: Callable[[], Awaitable[None]]
) -> None:
    """Run ``start`` (the async core's) on the facade's aloop, then register
    the facade; if either fails, stop the facade and re-raise."""
    try:
        facade.aloop.call(start)
        supervisor.register_scheduler(facade)
    except BaseException:
        facade.stop(wait=False)
        raise


def _manager_aloop(supervisor: SupervisorLike, name: str, aloop: ALoop | str | None
                   ) -> tuple[ALoop, bool]:
    """The aloop a new manager runs on, and whether its facade owns it."""
    if aloop is not None:
        return supervisor.resolve_aloop(aloop), False
    if supervisor.get_aloop() is not None:
        return supervisor.resolve_aloop(None), False
    # The dedicated aloop stays registered (stopped) after its facade
    # stops, as stopped aloops do; a new manager of that name restarts it.
    own_name = f"leasepool_{name}"
    previous = supervisor.get_aloop(own_name)
    if previous is not None and not previous.active:
        previous.start()
        return previous, True
    return supervisor.create_aloop(own_name, daemon=True), True


def create_lease_manager(
    supervisor: SupervisorLike,
    name: str,
    *,
    aloop: ALoop | str | None = None,
    **manager_kwargs: Any,
) -> SupervisedLeaseManager:
    """Build, start and register a supervised lease manager.

    See :meth:`TaskSupervisor.create_lease_manager`.
    """
    supervisor.require_active("create_lease_manager()")
    _check_free_name(supervisor, name)
    manager_kwargs.setdefault("name_prefix", name)
    manager = LeasedExecutorManager(**manager_kwargs)  # validates before any thread starts
    target, owns = _manager_aloop(supervisor, name, aloop)
    facade = SupervisedLeaseManager(name, manager, target, owns_aloop=owns)
    _start_and_register(supervisor, facade, manager.start)
    logger.debug("supervised lease manager created name=%s aloop=%s", name, target.name)
    return facade


def _find_manager(
    supervisor: SupervisorLike, manager: SupervisedLeaseManager | str
) -> SupervisedLeaseManager:
    if isinstance(manager, str):
        found = supervisor.get_schedulers().get(manager)
        if not isinstance(found, SupervisedLeaseManager):
            raise ValueError(f"no supervised lease manager named {manager!r}")
        return found
    if not isinstance(manager, SupervisedLeaseManager):
        raise ValueError(
            "manager must be a supervised lease manager from create_lease_manager() "
            f"(or its name), got {manager!r}"
        )
    return manager


def create_work_grinder(
    supervisor: SupervisorLike,
    name: str,
    manager: SupervisedLeaseManager | str,
    *,
    aloop: ALoop | str | None = None,
    **grinder_kwargs: Any,
) -> SupervisedWorkGrinder:
    """Build, start and register a supervised grinder on ``manager``'s aloop.

    See :meth:`TaskSupervisor.create_work_grinder`.
    """
    supervisor.require_active("create_work_grinder()")
    _check_free_name(supervisor, name)
    manager = _find_manager(supervisor, manager)
    if aloop is not None and supervisor.resolve_aloop(aloop) is not manager.aloop:
        raise ValueError(
            f"a grinder runs on its manager's aloop ({manager.aloop.name!r}); "
            "leave aloop=None or pass that one"
        )
    grinder_kwargs.setdefault("owner_prefix", name)
    grinder = WorkGrinder(executor_manager=manager.manager, **grinder_kwargs)
    facade = SupervisedWorkGrinder(name, grinder, manager)
    _start_and_register(supervisor, facade, grinder.start)
    logger.debug("supervised grinder created name=%s manager=%s", name, manager.name)
    return facade
