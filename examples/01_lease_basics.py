"""Leasing an executor from async code.

A manager owns a small rack of thread pools.  `acquire()` lends one out as a
lease that expires; inside the lease you run blocking calls without blocking
the event loop, and leaving the `async with` block gives the pool back.
"""

from __future__ import annotations

import asyncio
import hashlib

from neoleasepool import LeasedExecutorManager, LeaseExpiredError


def digest(data: bytes, rounds: int) -> str:
    """Some blocking work: hash the data over and over."""
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()[:16]


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=4)
    await manager.start()
    try:
        async with await manager.acquire(owner="report-job", lease_seconds=30) as lease:
            print("leased:", lease)
            # run() awaits one call; executor.submit() gives a concurrent future.
            print("digest:", await lease.run(digest, b"hello", 10_000))
            futures = [lease.executor.submit(digest, bytes([i]), 1_000) for i in range(4)]
            print("four more:", [f.result() for f in futures])
            print("manager while leased:", manager)
        print("manager after release:", manager)
        try:
            lease.executor.submit(digest, b"late", 1)
        except LeaseExpiredError as exc:
            print("after release the lease refuses work:", exc)
        stats = manager.stats()
        print("stats:", {k: stats[k] for k in ("total", "leased", "leases_granted")})
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
