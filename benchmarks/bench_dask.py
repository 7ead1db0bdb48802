"""The dask backend: why the grinder's chunking matters on a cluster.

Row (issue 6), on a local cluster of two single-threaded worker processes
(127.0.0.1, started here): 2,000 tiny items (``x * x``) through a grinder
on the ``dask`` backend (two pools of two, chunks sized automatically),
against the same 2,000 calls submitted one task each to Dask's own
``concurrent.futures`` executor (``client.get_executor(pure=False)``).  A
Dask task costs milliseconds of scheduling, so one task per item is slow.

Skipped, with a note, where the ``dask`` extra is not installed.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from neoleasepool import LeasedExecutorManager, WorkGrinder

from ._harness import Reporter, Row, have, median_seconds
from ._work import square

ITEMS = 2_000


async def _grinder_seconds(client: Any) -> float:
    manager = LeasedExecutorManager(
        backend="dask",
        max_pools=2,
        min_pools=1,
        workers_per_pool=2,
        check_interval=60.0,
        default_lease_seconds=60.0,
        dask_client=client,
    )
    await manager.start()
    grinder = WorkGrinder(
        executor_manager=manager,
        batch_size_threshold=500,
        max_wait_seconds=0.01,
        lease_seconds=60.0,
    )
    await grinder.start()
    loop = asyncio.get_running_loop()
    try:

        async def one_run() -> None:
            results = await asyncio.gather(*(grinder.submit(square, i) for i in range(ITEMS)))
            assert results[-1] == (ITEMS - 1) ** 2

        # median_seconds is synchronous: time each run from a helper thread.
        def timed_run() -> None:
            asyncio.run_coroutine_threadsafe(one_run(), loop).result()

        return await asyncio.to_thread(median_seconds, timed_run, repeat=5)
    finally:
        await grinder.stop()
        await manager.stop()


def _plain_seconds(client: Any) -> float:
    executor = client.get_executor(pure=False)

    def one_run() -> None:
        futures = [executor.submit(square, i) for i in range(ITEMS)]
        assert futures[-1].result() == (ITEMS - 1) ** 2
        for future in futures:
            future.result()

    return median_seconds(one_run, repeat=3)


def run(reporter: Reporter) -> None:
    """Run the dask row, or say why it is skipped."""
    if not have("distributed"):
        print("skipped: the dask extra is not installed (pip install neoleasepool[dask])")
        return
    distributed: Any = importlib.import_module("distributed")  # typed as Any: no stubs
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        ours = asyncio.run(_grinder_seconds(client))
        plain = _plain_seconds(client)
    reporter.add(
        Row("dask 2k x*x: grinder vs one task per item", "s", ours,
            "get_executor().submit", plain, higher_is_better=False, target=3.0,
            notes="local cluster, 2 workers x 1 thread")
    )
