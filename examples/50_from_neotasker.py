"""A script written for neotasker, running on neoleasepool: only the import changed.

Everything below the import is neotasker's documented API, as its README
and docs use it: the global ``task_supervisor``, aloops, workers made with
``@background_worker`` and by subclassing, and async jobs.  The line that
imports from ``neoleasepool`` was ``from neotasker import ...``;
``tests/test_neotasker_compat.py`` checks that nothing else in this file
names neoleasepool or uses anything neotasker 0.0.41 lacks, and runs the
file with the import switched back when neotasker is installed.

Run from the repository root::

    python examples/50_from_neotasker.py
"""

import threading
import time

from neoleasepool import BackgroundIntervalWorker, background_worker, task_supervisor

beats = []
beating = threading.Event()
doubled = []
handled = threading.Event()
alarmed = threading.Event()
polls = []
polled = threading.Event()
samples = []
sampled = threading.Event()


@background_worker(interval=0.05, delay_before=0.01, priority=50)
def heartbeat(**kwargs):
    beats.append(time.monotonic())
    if len(beats) == 3:
        beating.set()


@background_worker(queue=True)
def doubler(task, **kwargs):
    doubled.append(task * 2)
    if len(doubled) == 5:
        handled.set()


@background_worker(event=True)
def alarm(**kwargs):
    alarmed.set()


class Poller(BackgroundIntervalWorker):
    def run(self, **kwargs):
        polls.append(kwargs["source"])
        if len(polls) == 2:
            polled.set()


async def collect(source):
    samples.append(source)
    if len(samples) == 3:
        sampled.set()


def main():
    task_supervisor.set_thread_pool(min_size=2, max_size=8)
    task_supervisor.start()
    task_supervisor.create_aloop("default", default=True)
    task_supervisor.create_aloop("jobs")
    task_supervisor.create_async_job_scheduler("default", aloop="jobs", default=True)

    poller = Poller(interval=0.02, name="poller")
    started = [
        heartbeat.start(),
        doubler.start(),
        alarm.start(),
        poller.start(source="disk"),
    ]
    print("workers started:", all(started))
    print("start() of a running worker returns:", heartbeat.start())

    job = task_supervisor.create_async_job(target=collect, args=("sensor",), interval=0.02)

    for n in range(5):
        doubler.put_threadsafe(n)
    alarm.trigger_threadsafe()

    print("queue worker doubled:", handled.wait(10) and sorted(doubled))
    print("event worker triggered:", alarmed.wait(10))
    print("interval worker beat three times:", beating.wait(10))
    print("custom worker polled:", polled.wait(10) and polls[:2])
    print("async job sampled:", sampled.wait(10) and samples[:3])

    # neotasker's docs also show task_supervisor.cancel_async_job(job=job),
    # which neoleasepool has and neotasker 0.0.41 lacks: job.cancel() runs on both.
    job.cancel()
    print("job still active after cancel:", job.active)

    task_supervisor.stop(wait=True)
    print("stopped; workers active:", any(w.is_active() for w in (heartbeat, doubler, alarm)))


if __name__ == "__main__":
    main()
