"""Every kind of background worker, fed and stopped from sync code.

* an interval worker ticks every 50 ms (an async target, on the ``workers``
  aloop);
* a queue worker runs a sync target in the pool once per ``put_threadsafe``;
* an event worker runs when ``trigger_threadsafe`` is called;
* a plain ``BackgroundWorker`` loops in a pool thread until its target
  returns ``False``.

Nothing polls: a put or a trigger reaches its worker in one loop wake-up.
``task_supervisor.stop()`` stops the workers first (the queue worker drains
what was put before), then the aloops, then the pool.

Run from the repository root::

    python examples/21_background_workers.py
"""

from __future__ import annotations

import threading
import time
from typing import Any

from neoleasepool import (
    BackgroundEventWorker,
    background_worker,
    task_supervisor,
)

ticks: list[float] = []
done = threading.Event()


@background_worker(interval=0.05)
async def ticker(**kwargs: Any) -> None:
    ticks.append(time.monotonic())


@background_worker(q=True)
def printer(item: str, **kwargs: Any) -> None:
    print(f"queue worker got {item!r} in {threading.current_thread().name}")


def countdown(n: list[int], **kwargs: Any) -> bool:
    n[0] -= 1
    return n[0] > 0  # False stops the worker


def on_event(**kwargs: Any) -> None:
    print("event worker triggered")
    done.set()


def main() -> None:
    task_supervisor.start()
    task_supervisor.create_aloop("workers", default=True)

    ticker.start()
    printer.start()
    events = BackgroundEventWorker("events", on_event)
    events.start()
    counter = [1000]
    looping = background_worker(countdown)
    looping.start(n=counter)

    begin = time.perf_counter()
    printer.put_threadsafe("hello")
    printer.put_threadsafe("world")
    events.trigger_threadsafe()
    done.wait(5)
    print(f"trigger handled after {1000 * (time.perf_counter() - begin):.2f} ms")

    time.sleep(0.3)
    print(f"interval worker ran {len(ticks)} times in ~0.3 s")
    print(f"looping worker counted down to {counter[0]}, stopped={looping.is_stopped()}")

    printer.put_threadsafe("drained at stop")
    task_supervisor.stop()
    print("all stopped:", not any(w.is_active() for w in (ticker, printer, events)))


if __name__ == "__main__":
    main()
