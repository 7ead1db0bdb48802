"""Grow and shrink the pools with a live signal: connected devices.

The manager keeps ``ceil(devices / units_per_pool)`` pools ready, never
fewer than ``min_pools`` nor more than ``max_pools``.  Here 31 devices
connect (ceil(31 / 10) = 4 pools), then all of them disconnect (back to
``min_pools`` = 1).

``notify_scale_changed()`` wakes the manager's checker at once instead of
at the next ``check_interval``; the example then waits, with a deadline,
until the checker has caught up, so what it prints is the settled state.

Run from the repository root::

    python examples/04_adaptive_sizing.py
"""

from __future__ import annotations

import asyncio
import time

from neoleasepool import LeasedExecutorManager


async def settle(manager: LeasedExecutorManager, deadline_seconds: float = 5.0) -> None:
    """Wait until the manager owns as many pools as the sizing rule asks."""
    deadline = time.monotonic() + deadline_seconds
    while manager.total_count != manager.desired_executor_count():
        if time.monotonic() > deadline:
            raise TimeoutError("the checker did not resize the manager in time")
        await asyncio.sleep(0.01)  # let the checker task run


def show(step: str, manager: LeasedExecutorManager) -> None:
    print(
        f"{step:<26} desired={manager.desired_executor_count()} "
        f"total={manager.total_count}"
    )


async def main() -> None:
    devices: set[str] = set()  # the signal: whatever your units are

    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=5,
        min_pools=1,
        units_per_pool=10,  # one pool serves up to 10 devices
        size_provider=lambda: len(devices),
        check_interval=60,  # without a notify, the checker would wait this long
        workers_per_pool=2,
    )
    await manager.start()
    try:
        show("started:", manager)

        devices.update(f"device-{n}" for n in range(31))
        manager.notify_scale_changed()
        await settle(manager)
        show("31 devices connected:", manager)

        devices.clear()
        manager.notify_scale_changed()
        await settle(manager)
        show("all devices gone:", manager)
    finally:
        await manager.stop()  # joins every pool's threads
    print("stopped: nothing left running")


if __name__ == "__main__":
    asyncio.run(main())
