"""Shared fixtures: the leak check every test runs under.

The autouse ``no_leaks`` fixture fails a test that leaves a thread or a
child process behind, in the spirit of CPython's
``threading_setup``/``threading_cleanup``.  The forkserver process is not
counted: it lives for the whole program by design.  Nor are two things of
Dask's (see :data:`PROGRAM_LIFETIME_THREADS` and :data:`service_owned`).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator

import pytest

#: How long a test may take to let its threads and children wind down.
LEAK_GRACE_SECONDS = 10.0


#: Threads that live as long as the program by design, by name prefix:
#: ``distributed.utils`` starts a one-thread "Dask-Offload" executor the
#: first time a Dask client or cluster needs it and never shuts it down.
PROGRAM_LIFETIME_THREADS = ("Dask-Offload",)

#: Long-lived services of module-scoped fixtures (the Dask ``LocalCluster``
#: of ``tests/test_dask_backend.py``) register here a callable returning the
#: threads and child pids they own *right now*.  Such a service restarts its
#: worker processes (and their watcher threads) by itself during a test: that
#: is the service's doing, not a leak of the test.  The fixture that starts
#: a service unregisters it and checks its own teardown.
service_owned: list[Callable[[], tuple[set[threading.Thread], set[int]]]] = []


def _owned_by_services() -> tuple[set[threading.Thread], set[int]]:
    threads: set[threading.Thread] = set()
    pids: set[int] = set()
    for owned in service_owned:
        service_threads, service_pids = owned()
        threads |= service_threads
        pids |= service_pids
    return threads, pids


def _forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    return getattr(server, "_forkserver_pid", None)


def _live_children() -> set[int]:
    ignore = _forkserver_pid()
    return {
        p.pid
        for p in multiprocessing.active_children()
        if p.pid is not None and p.pid != ignore
    }


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads or child processes behind."""
    threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        service_threads, service_pids = _owned_by_services()
        extra_threads = [
            t
            for t in threading.enumerate()
            if t not in threads_before
            and t not in service_threads
            and t.is_alive()
            and not t.name.startswith(PROGRAM_LIFETIME_THREADS)
        ]
        children = _live_children() - service_pids
        if not extra_threads and not children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    names = sorted(t.name for t in extra_threads)
    pytest.fail(f"test left threads {names} and child processes {sorted(children)}")


def pytest_configure(config: pytest.Config) -> None:
    """Without pytest-run-parallel (the ``test`` extra installs it), its
    markers are still known, so ``--strict-markers`` accepts them, and the
    marked tests run once, as plain tests."""
    if not config.pluginmanager.hasplugin("run-parallel"):
        config.addinivalue_line(
            "markers",
            "force_parallel_threads(n): run the test in n threads at once "
            "(pytest-run-parallel; without it the test runs once)",
        )
