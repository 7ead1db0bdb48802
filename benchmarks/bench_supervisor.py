"""TaskSupervisor and queue workers against neotasker 0.0.41, in the same run.

Two rows:

* start, then stop, a supervisor with two aloops.  neotasker's aloops stop
  by polling their task sets every ``poll_delay`` (10 ms); ours wait on the
  loop thread's own shutdown.
* the latency from ``put_threadsafe`` to the queue worker's (async) target
  running, item after item.  neotasker's queue worker sleeps ``poll_delay``
  after every item, so the next put waits for that sleep; ours wakes the
  target within one loop iteration.

Ours and neotasker alternate within each repetition, so that drift on a
shared machine hits both sides alike; each figure is a median.  Our
start-then-stop cost is thread hand-offs (three loop threads started and
joined), so it grows with machine load, while neotasker's is mostly fixed
sleeps: on a heavily loaded machine the ratio of the first row drops.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from neoleasepool import BackgroundQueueWorker, TaskSupervisor

from ._harness import Reporter, Row, have

CYCLES = 15
ITEMS = 60
WARMUP_ITEMS = 5
REPEAT = 3


def _start_stop_ours() -> float:
    begin = time.perf_counter()
    supervisor = TaskSupervisor(id="bench")
    supervisor.start()
    supervisor.create_aloop("a")
    supervisor.create_aloop("b")
    supervisor.stop()
    return time.perf_counter() - begin


def _start_stop_neotasker() -> float:
    from neotasker import TaskSupervisor as NeoTaskSupervisor

    begin = time.perf_counter()
    supervisor = NeoTaskSupervisor(supervisor_id="bench")
    supervisor.start()
    supervisor.create_aloop("a")
    supervisor.create_aloop("b")
    supervisor.stop()
    return time.perf_counter() - begin


class _Latency:
    """Times put -> target, one item at a time."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.arrived = threading.Event()

    async def target(self, sent: float, **kwargs: Any) -> None:
        self.samples.append(time.perf_counter() - sent)
        self.arrived.set()

    def drive(self, put: Callable[[float], None], items: int) -> list[float]:
        self.samples.clear()
        for _ in range(items):
            self.arrived.clear()
            put(time.perf_counter())
            if not self.arrived.wait(10):
                raise TimeoutError("the queue worker did not run the item")
        return list(self.samples)


def _latency_ours() -> list[float]:
    supervisor = TaskSupervisor(id="bench_q")
    supervisor.start()
    supervisor.create_aloop("workers", default=True)
    probe = _Latency()
    worker = BackgroundQueueWorker("latency", probe.target, supervisor=supervisor)
    try:
        worker.start()
        probe.drive(worker.put_threadsafe, WARMUP_ITEMS)
        return probe.drive(worker.put_threadsafe, ITEMS)
    finally:
        supervisor.stop()


def _latency_neotasker() -> list[float]:
    from neotasker import BackgroundQueueWorker as NeoQueueWorker
    from neotasker import TaskSupervisor as NeoTaskSupervisor

    supervisor = NeoTaskSupervisor(supervisor_id="bench_q")
    supervisor.start()
    supervisor.create_aloop("workers", default=True)
    probe = _Latency()
    worker = NeoQueueWorker(name="latency", supervisor=supervisor)
    worker.run = probe.target
    try:
        worker.start()
        probe.drive(worker.put_threadsafe, WARMUP_ITEMS)
        return probe.drive(worker.put_threadsafe, ITEMS)
    finally:
        supervisor.stop()


def _median_ms_row(
    name: str, ours: list[float], theirs: list[float] | None, *, target: float, notes: str
) -> Row:
    """A row of median milliseconds, lower is better, against neotasker."""
    return Row(
        name=name,
        unit="ms",
        ours=1000 * statistics.median(ours),
        baseline_name="neotasker 0.0.41",
        baseline=1000 * statistics.median(theirs) if theirs is not None else None,
        higher_is_better=False,
        target=target,
        notes=notes,
    )


def run(reporter: Reporter) -> None:
    baseline = have("neotasker")
    ours_cycles: list[float] = []
    theirs_cycles: list[float] = []
    _start_stop_ours()  # warm-up: imports, first thread
    if baseline:
        _start_stop_neotasker()
    for _ in range(CYCLES):
        ours_cycles.append(_start_stop_ours())
        if baseline:
            theirs_cycles.append(_start_stop_neotasker())
    reporter.add(
        _median_ms_row(
            "supervisor start+stop, two aloops",
            ours_cycles,
            theirs_cycles if baseline else None,
            target=5.0,
            notes=f"median of {CYCLES}",
        )
    )

    ours_latency: list[float] = []
    theirs_latency: list[float] = []
    for _ in range(REPEAT):
        ours_latency.extend(_latency_ours())
        if baseline:
            theirs_latency.extend(_latency_neotasker())
    reporter.add(
        _median_ms_row(
            "queue worker put_threadsafe -> target",
            ours_latency,
            theirs_latency if baseline else None,
            target=10.0,
            notes=f"median of {REPEAT}x{ITEMS} items",
        )
    )
