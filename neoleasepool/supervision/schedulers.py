"""The scheduler protocol: what the supervisor requires, and what it may use.

A *scheduler* is anything the supervisor runs and stops: background
workers, the blocking facades of lease managers and grinders, and
third-party objects written for neotasker.  The contract is
:class:`Scheduler` (required of all: a regular ``stop(wait=True)``) and
:class:`AsyncScheduler` (for those whose async ``loop()`` the supervisor
runs).  A scheduler may also declare the following; nothing else is ever
looked for:

==============================  ===========================================
``name`` or ``_name``           its registry name (else one is generated)
``aloop`` or ``worker_loop``    the loop its ``loop()`` runs on: an ALoop,
                                an aloop name or an asyncio loop (else the
                                supervisor's own loop); see :class:`OnLoop`
``accepts_cancel_tasks``        ``True``: ``stop()`` also takes
                                ``cancel_tasks``; see
                                :class:`CancellableStop`
``stopped_with_supervisor``     ``True``: stopped even when the supervisor
                                stops with ``stop_schedulers=False``
``owns_thread(thread)``         with ``stopped_with_supervisor``: whether
                                ``thread`` runs the scheduler's work, so
                                that a stop from there must not wait in
                                place
==============================  ===========================================

The optional parts are typed as protocols too, and read only through the
functions below.  The registry (:mod:`.registry`) passes ``wait`` only to
a scheduler that has not declared ``accepts_cancel_tasks``, since a
third-party ``stop`` may take nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable
from typing import Protocol, TypeGuard, runtime_checkable

from ..loops.aloop import ALoop
from ..types import WaitArg

__all__ = [
    "AsyncScheduler",
    "CancellableStop",
    "LoopSpec",
    "OnLoop",
    "Scheduler",
    "runs_on",
    "scheduler_loop",
    "scheduler_name",
    "stopped_with_supervisor",
    "takes_cancel_tasks",
]

_numbers = itertools.count(1)

#: What names a loop: an ALoop, an aloop's name, an asyncio loop, or nothing.
LoopSpec = ALoop | str | asyncio.AbstractEventLoop | None


class Scheduler(Protocol):
    """Required of every scheduler: a regular ``stop``.

    ``wait`` is ``True`` (no limit), ``False`` (do not wait) or seconds.
    """

    def stop(self, wait: WaitArg = True) -> object: ...


class AsyncScheduler(Scheduler, Protocol):
    """A scheduler whose ``loop()`` coroutine the supervisor runs until stop."""

    def loop(self) -> Awaitable[object]: ...


@runtime_checkable
class CancellableStop(Protocol):
    """Optional: ``stop()`` also takes ``cancel_tasks``, declared by a flag."""

    accepts_cancel_tasks: bool

    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> object: ...


@runtime_checkable
class OnLoop(Protocol):
    """Optional: the loop a scheduler's ``loop()`` runs on."""

    aloop: LoopSpec


@runtime_checkable
class _OnWorkerLoop(Protocol):
    """neotasker's name for :class:`OnLoop`'s attribute."""

    worker_loop: LoopSpec


@runtime_checkable
class _Named(Protocol):
    """Optional: the registry name."""

    name: str


@runtime_checkable
class _NeotaskerNamed(Protocol):
    """neotasker's name for :class:`_Named`'s attribute."""

    _name: str


@runtime_checkable
class _Owned(Protocol):
    """Optional: stopped even when the supervisor stops with ``stop_schedulers=False``."""

    stopped_with_supervisor: bool


@runtime_checkable
class _ThreadOwner(Protocol):
    """Optional, with :class:`_Owned`: which threads run the scheduler's work."""

    def owns_thread(self, thread: threading.Thread) -> bool: ...


def scheduler_name(scheduler: Scheduler) -> str:
    """A scheduler's name: its ``name`` or ``_name`` string, else a new one."""
    if isinstance(scheduler, _Named) and isinstance(scheduler.name, str) and scheduler.name:
        return scheduler.name
    if (
        isinstance(scheduler, _NeotaskerNamed)
        and isinstance(scheduler._name, str)
        and scheduler._name
    ):
        return scheduler._name
    return f"{type(scheduler).__name__}_{next(_numbers)}"


def scheduler_loop(scheduler: Scheduler) -> LoopSpec:
    """The loop ``scheduler`` names (``aloop``, else ``worker_loop``), or ``None``."""
    if isinstance(scheduler, OnLoop) and scheduler.aloop:
        return scheduler.aloop
    if isinstance(scheduler, _OnWorkerLoop) and scheduler.worker_loop:
        return scheduler.worker_loop
    return None


def takes_cancel_tasks(scheduler: Scheduler) -> TypeGuard[CancellableStop]:
    """Whether ``scheduler.stop`` declares that it takes ``cancel_tasks``."""
    return isinstance(scheduler, CancellableStop) and scheduler.accepts_cancel_tasks is True


def stopped_with_supervisor(scheduler: Scheduler) -> bool:
    """Whether the supervisor stops ``scheduler`` even without ``stop_schedulers``."""
    return isinstance(scheduler, _Owned) and scheduler.stopped_with_supervisor is True


def runs_on(scheduler: Scheduler, thread: threading.Thread) -> bool:
    """Whether ``scheduler`` is stopped with the supervisor and ``thread`` runs its work."""
    return (
        stopped_with_supervisor(scheduler)
        and isinstance(scheduler, _ThreadOwner)
        and scheduler.owns_thread(thread)
    )
