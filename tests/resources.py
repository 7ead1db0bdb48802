"""What a process holds right now: threads, child processes, open fds.

The shutdown and soak suites compare snapshots: a stop must leave no
thread, no child process (by ``multiprocessing.active_children()`` *and*
by ``/proc``, which also sees children multiprocessing forgot) and no file
descriptor beyond those open before it.  The forkserver process (and its
socket) and multiprocessing's resource tracker live for the program by
design: :func:`warm_forkserver` starts them before a baseline is taken, and
they are never counted as children.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from neoleasepool.backends.process_logging import safe_mp_context

from .support import wait_until


def forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    return getattr(server, "_forkserver_pid", None)


def resource_tracker_pid() -> int | None:
    from multiprocessing import resource_tracker

    return getattr(resource_tracker._resource_tracker, "_pid", None)


def proc_children() -> set[int]:
    """Live (non-zombie) children of this process, read from ``/proc``, and
    the workers the forkserver started for it (its children)."""
    parents = {os.getpid(), forkserver_pid() or -1}
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) in parents and fields[0] != "Z":
            children.add(int(entry))
    # Both live for the program once a forkserver pool has run.
    children.discard(forkserver_pid() or -1)
    children.discard(resource_tracker_pid() or -1)
    return children


def mp_children() -> set[int]:
    ignore = forkserver_pid()
    return {
        p.pid
        for p in multiprocessing.active_children()
        if p.pid is not None and p.pid != ignore
    }


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def warm_forkserver() -> None:
    """Start the forkserver (and import what workers need) before a baseline."""
    with ProcessPoolExecutor(1, mp_context=safe_mp_context()) as pool:
        pool.submit(abs, 1).result(60)


@dataclass
class Snapshot:
    threads: set[threading.Thread]
    fds: set[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(set(threading.enumerate()), open_fds())

    def leftovers(self) -> tuple[list[str], set[int], set[int]]:
        threads = sorted(
            t.name for t in threading.enumerate() if t not in self.threads and t.is_alive()
        )
        return threads, proc_children() | mp_children(), open_fds() - self.fds

    def assert_clean(self, timeout: float = 15.0) -> None:
        """Wait (bounded) until nothing is left beyond the snapshot."""
        try:
            wait_until(lambda: self.leftovers() == ([], set(), set()), timeout=timeout)
        except AssertionError:
            threads, children, fds = self.leftovers()
            links = {}
            for fd in fds:
                try:
                    links[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    links[fd] = "?"
            raise AssertionError(
                f"left behind: threads={threads} children={sorted(children)} fds={links}"
            ) from None
