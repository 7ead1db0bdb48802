"""The supervisor's loops: its own, its named aloops, and the default one.

:class:`ALoopHost` is the first of the supervisor's three parts (see the
package docstring): an id, a running flag, and the loops.  It holds the
aloops by name (in creation order), the default aloop of workers, and the
supervisor's own loop (reserved name ``"__supervisor__"``).  Those three
are read and written under the registry lock ``_lock``; aloops are started,
stopped and joined outside it, since a stopping aloop may call back into
the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from ..exceptions import LeasePoolNotStartedError
from ..loops.aloop import ALoop
from ..types import WaitArg

__all__ = ["RESERVED_ALOOP_NAME", "ALoopHost"]

logger = logging.getLogger("neoleasepool.supervisor")

#: The name of the supervisor's own loop; no aloop may take it.
RESERVED_ALOOP_NAME = "__supervisor__"


class ALoopHost:
    """An id, a running flag, the supervisor's own loop and its named aloops.

    Args:
        id: Identifier used in thread names and log lines; a random UUID
            when ``None``.
        supervisor_id: neotasker's name for ``id``.
    """

    def __init__(self, id: str | None = None, *, supervisor_id: str | None = None) -> None:
        self.id = id or supervisor_id or str(uuid.uuid4())
        self._lock = threading.RLock()  # registry: aloops and schedulers
        self._active = False
        self._stopping = False  # written under _lock; no aloop is created meanwhile
        #: The aloops by name, in creation order.
        self.aloops: dict[str, ALoop] = {}
        #: The default aloop of workers and schedulers, if any.
        self.default_aloop: ALoop | None = None
        self._loop: ALoop | None = None

    @property
    def active(self) -> bool:
        """Whether the supervisor runs."""
        return self._active

    @property
    def aloop(self) -> ALoop | None:
        """The supervisor's own loop (``"__supervisor__"``) while it runs."""
        return self._loop

    def require_active(self, what: str) -> None:
        """Raise unless the supervisor runs; ``what`` names the caller's API.

        Raises:
            LeasePoolNotStartedError: A ``RuntimeError`` saying to call
                :meth:`start` first.
        """
        if not self._active:
            raise LeasePoolNotStartedError(
                f"TaskSupervisor {self.id!r} is not running: call its start() before using {what}"
            )

    def create_aloop(
        self,
        name: str,
        daemon: bool = False,
        start: bool = True,
        default: bool = False,
    ) -> ALoop:
        """Create a named aloop; the supervisor stops it at shutdown.

        Args:
            name: Unique name; its thread is ``supervisor_aloop_<name>``.
            daemon: Run it in a daemon thread.
            start: Start it now (otherwise :meth:`start_aloop` later).
            default: Make it the default aloop of workers.

        Raises:
            ValueError: If ``name`` is reserved, empty or already used.
            RuntimeError: If the supervisor is stopping.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"aloop name must be a non-empty string, got {name!r}")
        if name == RESERVED_ALOOP_NAME:
            raise ValueError(
                f"the aloop name {RESERVED_ALOOP_NAME!r} is reserved for the "
                f"supervisor's own loop; choose another name"
            )
        aloop = ALoop(name, self, daemon=daemon)
        with self._lock:
            if self._stopping:
                raise RuntimeError(
                    f"TaskSupervisor {self.id!r} is stopping; create aloops after start()"
                )
            if name in self.aloops:
                raise ValueError(f"an aloop named {name!r} already exists; use get_aloop({name!r})")
            self.aloops[name] = aloop
            if default:
                self.default_aloop = aloop
        if start:
            aloop.start()
        return aloop

    def _named_aloop(self, name: str) -> ALoop:
        aloop = self.get_aloop(name)
        if aloop is None:
            raise ValueError(
                f"supervisor {self.id!r} has no aloop named {name!r}; create it "
                f"with create_aloop({name!r})"
            )
        return aloop

    def start_aloop(self, name: str) -> bool:
        """Start (or restart) the aloop called ``name``.

        Returns:
            ``True``, as neotasker's ``start_aloop`` (also when the aloop
            was running already).

        Raises:
            ValueError: If there is no such aloop (neotasker logs an error
                and returns ``False``).
        """
        self._named_aloop(name).start()
        return True

    def stop_aloop(self, name: str, wait: WaitArg = True, cancel_tasks: bool = False) -> bool:
        """Stop the aloop called ``name``; it stays registered for restarts.

        Returns:
            ``True``, as neotasker's ``stop_aloop``.

        Raises:
            ValueError: If there is no such aloop (neotasker logs an error
                and returns ``False``).
        """
        self._named_aloop(name).stop(wait=wait, cancel_tasks=cancel_tasks)
        return True

    def get_aloop(self, name: str | None = None, default: bool = True) -> ALoop | None:
        """Return the aloop ``name``, or the default aloop when ``name`` is None.

        ``"__supervisor__"`` returns the supervisor's own loop.
        """
        with self._lock:
            if name is None:
                return self.default_aloop if default else None
            if name == RESERVED_ALOOP_NAME:
                return self._loop
            return self.aloops.get(name)

    def get_aloops(self) -> dict[str, ALoop]:
        """A copy of the aloops by name."""
        with self._lock:
            return dict(self.aloops)

    def set_default_aloop(self, aloop: ALoop | str | None) -> None:
        """Make ``aloop`` (or the aloop of that name) the workers' default."""
        resolved = self._named_aloop(aloop) if isinstance(aloop, str) else aloop
        with self._lock:
            self.default_aloop = resolved

    def resolve_aloop(self, spec: ALoop | str | asyncio.AbstractEventLoop | None) -> ALoop:
        """Find the aloop that ``spec`` names, as workers and schedulers do.

        Args:
            spec: An :class:`ALoop`, an aloop name, an asyncio loop run by one
                of this supervisor's aloops, or ``None`` for the default
                aloop, else the supervisor's own loop.

        Raises:
            LeasePoolNotStartedError: If ``None`` falls back to the
                supervisor's loop and the supervisor is not running.
            ValueError: If no aloop of this supervisor matches.
        """
        if isinstance(spec, ALoop):
            return spec
        if isinstance(spec, str):
            return self._named_aloop(spec)
        with self._lock:
            candidates = [self._loop, *self.aloops.values()]
            default = self.default_aloop
        if spec is None:
            if default is not None and default.active:
                return default
            self.require_active("its own loop")
            assert self._loop is not None
            return self._loop
        for aloop in candidates:
            if aloop is not None and aloop.loop is spec:
                return aloop
        raise ValueError(
            f"the event loop {spec!r} is not run by an aloop of supervisor "
            f"{self.id!r}; pass an ALoop or an aloop name"
        )

    # -------------------------------------------- for the supervisor's start/stop

    def _start_own_loop(self) -> None:
        """Start the supervisor's own loop in the daemon thread ``supervisor_<id>_loop``."""
        loop = ALoop(
            RESERVED_ALOOP_NAME, self, daemon=True, thread_name=f"supervisor_{self.id}_loop"
        )
        loop.start()
        with self._lock:
            self._loop = loop

    def _in_own_loop_thread(self) -> bool:
        """Whether the caller runs on the own loop or on one of the aloops."""
        with self._lock:
            loops = [self._loop, *self.aloops.values()]
        return any(loop is not None and loop.in_loop_thread() for loop in loops)

    def _stop_loops(self, deadline: float | None, cancel_tasks: bool) -> None:
        """Stop every aloop (all asked at once, then joined), then the own loop.

        The aloops are forgotten; ``deadline`` bounds the wait for their
        tasks, after which what is left is cancelled.
        """
        with self._lock:
            aloops = list(reversed(self.aloops.values()))
            self.aloops.clear()
            self.default_aloop = None
            own, self._loop = self._loop, None
        for aloop in aloops:
            aloop.request_stop(deadline, cancel_tasks)
        for aloop in aloops:
            aloop.join()
        logger.debug("supervisor aloops stopped id=%s count=%s", self.id, len(aloops))
        if own is not None:
            own.request_stop(deadline, cancel_tasks)
            own.join()
