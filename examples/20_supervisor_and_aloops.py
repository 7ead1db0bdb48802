"""A supervisor, two aloops and the blocking bridge, from plain sync code.

``task_supervisor`` owns a loop thread, named aloops (each an asyncio loop
in a thread ``supervisor_aloop_<name>``) and a task pool.  Sync code runs
coroutines on an aloop with ``call`` (block for the result), ``submit`` (a
``concurrent.futures.Future``) or neotasker's ``run_coroutine_threadsafe``,
and plain functions in the pool with ``spawn``.  One ``stop()`` ends it all:
here ``wait=0.5`` lets finished work through and cancels a stuck coroutine.

Run from the repository root::

    python examples/20_supervisor_and_aloops.py
"""

from __future__ import annotations

import asyncio
import threading
import time

from neoleasepool import spawn, task_supervisor


async def where(label: str) -> str:
    await asyncio.sleep(0.01)
    return f"{label} ran in {threading.current_thread().name}"


async def stuck() -> None:
    await asyncio.sleep(3600)


def main() -> None:
    task_supervisor.set_thread_pool(max_size=4)
    task_supervisor.start()
    io = task_supervisor.create_aloop("io", default=True)
    jobs = task_supervisor.create_aloop("jobs")

    print(io.call(where, "call()"))
    print(jobs.run_coroutine_threadsafe(where("run_coroutine_threadsafe()")))
    future = jobs.submit(where, "submit()")
    print(future.result(timeout=5))
    print("spawn() in the pool:", spawn(sum, [1, 2, 3]).result(timeout=5))

    forever = io.submit(stuck)
    info = task_supervisor.get_info()
    print(f"supervisor {info.id!r}: aloops {sorted(info.aloops)}, active={info.active}")

    begin = time.monotonic()
    task_supervisor.stop(wait=0.5)
    print(
        f"stopped in {time.monotonic() - begin:.2f}s; stuck coroutine cancelled:",
        forever.cancelled(),
    )
    print("threads left:", [t.name for t in threading.enumerate()])


if __name__ == "__main__":
    main()
