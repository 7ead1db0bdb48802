"""Scaling out: the same manager and grinder code on a Dask cluster.

Give the scheduler's address as the first argument or in
``NEOLEASEPOOL_DASK_ADDRESS`` (``tcp://host:8786``); without one, the script
starts a small local cluster (two worker processes on 127.0.0.1) and shuts
it down at the end.  Only the manager's ``backend=`` and ``dask_*`` options
differ from a thread or process setup.

Needs the optional extra: ``pip install neoleasepool[dask]``.  Without it,
the script says so and exits 0.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import sys
from typing import Any

from neoleasepool import LeasedExecutorManager, WorkGrinder


def score(value: int) -> int:
    """A small CPU-bound job, run on a Dask worker."""
    return sum(i * i for i in range(value % 500))


async def main(dask_options: dict[str, Any]) -> None:
    manager = LeasedExecutorManager(
        backend="dask", max_pools=2, workers_per_pool=2, **dask_options
    )
    grinder = WorkGrinder(
        executor_manager=manager, batch_size_threshold=200, max_wait_seconds=0.05
    )
    await manager.start()
    await grinder.start()
    try:
        async with await manager.acquire(owner="example") as lease:
            print("one call on the cluster:", await lease.run(score, 123))
        results = await asyncio.gather(*(grinder.submit(score, n) for n in range(1000)))
        print(f"grinder: {len(results)} results, total {sum(results)}")
        stats = grinder.stats()
        print(
            f"batches={stats['batches_run']} leases={stats['leases_acquired']} "
            f"avg_item_seconds={stats['avg_item_seconds']:.2g}"
        )
        details = manager.stats()["backend_details"]
        print(f"scheduler={details['scheduler']} owns_client={details['owns_client']}")
    finally:
        await grinder.stop()
        await manager.stop()


def run() -> None:
    if importlib.util.find_spec("distributed") is None:
        print("This example needs Dask's distributed scheduler: pip install neoleasepool[dask]")
        return
    address = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NEOLEASEPOOL_DASK_ADDRESS")
    if address:
        print(f"using the Dask cluster at {address}")
        asyncio.run(main({"dask_address": address}))
        return
    distributed: Any = importlib.import_module("distributed")
    print("no address given: starting a local cluster of 2 worker processes")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        # A ready client is used as is, and left open when the manager stops.
        asyncio.run(main({"dask_client": client}))


if __name__ == "__main__":
    run()
