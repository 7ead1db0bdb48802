"""``python -m neoleasepool demo``: the whole library from a plain sync script.

The story: a fleet of simulated devices connects and disconnects.  A plain
synchronous program (no ``async def`` in its main thread) serves it with

* ``task_supervisor``, started and stopped with one call each;
* a thread lease manager ``io`` and a process lease manager ``cpu``, both
  sized from the number of devices online: an interval background worker
  "scans" the fleet and calls ``notify_scale_changed()`` when it changed;
* a grinder ``readings`` on ``io``, fed by four plain threads (``enqueue``)
  and by a coroutine on an aloop of its own (``asubmit``).  When a device
  leaves, its readings still queued are cancelled and never run;
* three analyser threads that lease a process pool per device
  (``with cpu.lease(owner=...)``), one job that overstays its lease so
  that the manager revokes it at the hard expiry and kills its worker, and
  one that hangs under a 0.5 s time limit (``time_limited``): its worker is
  stopped and replaced, and the same pool serves the next job.

The main thread samples ``stats()`` a few times a second and hands
:class:`~neoleasepool._render.Snapshot` objects to the screen.  The run ends
on its own; then everything is stopped, every thread joined, and the
summary says what happened.  With ``serve`` the supervisor also serves its
status page (``task_supervisor.serve_status()``, URL printed first) and,
once the work is done, keeps serving until Ctrl-C stops it.  The simulated
devices and the work functions are in :mod:`.fleet`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import random
import threading
import time
from collections import deque
from typing import Any, TextIO

from .._util.limits import time_limited
from ..exceptions import ItemTimeoutError, LeaseExpiredError
from ..supervision.supervisor import task_supervisor
from ..sync import SupervisedLeaseManager, SupervisedWorkGrinder
from .fleet import Fleet, SensorGlitch, checksum, fingerprint, fleet_target, hang, read_sensor
from .render import Screen, Snapshot, summary_lines

__all__ = ["SensorGlitch", "run_demo"]

#: Seconds between two samples (and two frames on a terminal).
FRAME_SECONDS = 0.2
FEEDERS = 4


class Demo:
    """One run of the demo; :meth:`run` returns the process exit code."""

    def __init__(
        self, seconds: float, out: TextIO, *, live: bool, serve: bool = False, port: int = 0
    ) -> None:
        self.seconds = seconds
        self.out = out
        self.serve = serve
        self.port = port
        self.screen = Screen(out, live=live, plain_every=max(1.0, seconds / 10))
        self.rng = random.Random(8)
        self.fleet = Fleet(self.rng)
        self.stop = threading.Event()
        self.started = 0.0
        self.work_done: float | None = None  # (the summary leaves serving time out)
        self.notes: list[str] = []
        self.analyses = 0
        self.revoked_jobs = 0
        self.timed_out_jobs = 0
        self.async_items = 0
        self.peaks: dict[str, tuple[int, int]] = {}
        self.rates: deque[tuple[float, int]] = deque(maxlen=12)
        self.peak_rate = 0.0
        self.threads: list[threading.Thread] = []

    def progress(self) -> float:
        return (time.monotonic() - self.started) / self.seconds

    # ------------------------------------------------------------ the parts

    def _feeder(self, index: int, grinder: SupervisedWorkGrinder) -> None:
        seq = index
        while not self.stop.wait(0.05):
            for device in self.fleet.snapshot()[index::FEEDERS]:
                for _ in range(4):
                    seq += FEEDERS
                    self.fleet.track(device, grinder.enqueue(read_sensor, device, seq))

    async def _async_feeder(self, grinder: SupervisedWorkGrinder) -> None:
        block = 0
        while not self.stop.is_set():
            blocks = range(block, block + 25)
            block += 25
            results = await asyncio.gather(*(grinder.asubmit(checksum, b) for b in blocks))
            self.async_items += len(results)
            await asyncio.sleep(0.1)  # pacing: a steady trickle of async work, not a poll

    def _analyser(self, index: int, cpu: SupervisedLeaseManager) -> None:
        stuck_at = 0.3 if index == 0 and self.seconds >= 3 else None
        hung_at = 0.5 if index == 1 and self.seconds >= 3 else None
        while not self.stop.wait(self.rng.uniform(0.05, 0.3)):
            devices = self.fleet.snapshot()
            if not devices:
                continue
            device = self.rng.choice(devices)
            if stuck_at is not None and self.progress() >= stuck_at:
                stuck_at = None
                self._overstay(cpu, device)
                continue
            if hung_at is not None and self.progress() >= hung_at:
                hung_at = None
                self._time_limit(cpu, device)
                continue
            try:
                with cpu.lease(owner=f"analyse:{device}", lease_seconds=2.0, timeout=1.0) as lease:
                    for _ in range(2):
                        lease.run(fingerprint, device, 20_000)
                        self.analyses += 1
            except TimeoutError:
                continue  # every process pool was busy for a second: try again later
            except (LeaseExpiredError, concurrent.futures.BrokenExecutor) as exc:
                # Slower than lease plus grace (a loaded machine): revoked, like the stuck job.
                self.notes.append(f"lease analyse:{device} revoked ({type(exc).__name__})")
                self.revoked_jobs += 1

    def _overstay(self, cpu: SupervisedLeaseManager, device: str) -> None:
        lease = cpu.acquire(owner=f"stuck:{device}", lease_seconds=0.8)
        self.notes.append(f"stuck:{device} runs a 30 s job on a 0.8 s lease (+0.5 s grace)")
        job = lease.executor.submit(hang, 30.0)
        try:
            job.result(timeout=10)
        except (concurrent.futures.BrokenExecutor, concurrent.futures.CancelledError) as exc:
            self.revoked_jobs += 1
            self.notes.append(
                f"stuck:{device} revoked at hard expiry, worker killed ({type(exc).__name__})"
            )
        except concurrent.futures.TimeoutError:  # (the builtin TimeoutError on 3.11+)
            self.notes.append(f"stuck:{device} was not revoked within 10 s")
        lease.release()

    def _time_limit(self, cpu: SupervisedLeaseManager, device: str) -> None:
        """A job that hangs, under a 0.5 s time limit: its worker is stopped
        and replaced, and the same pool serves the next job."""
        try:
            with cpu.lease(owner=f"limited:{device}", lease_seconds=10.0, timeout=5.0) as lease:
                hung = lease.executor.submit(time_limited(hang, 0.5), 30.0)
                try:
                    hung.result(timeout=10)
                except ItemTimeoutError as exc:
                    lease.run(fingerprint, device, 20_000)  # same pool, new worker
                    self.notes.append(
                        f"limited:{device} hung, stopped at its 0.5 s limit after "
                        f"{exc.elapsed:.2f} s; its pool went on"
                    )
                    self.timed_out_jobs += 1
        except (TimeoutError, LeaseExpiredError) as exc:
            self.notes.append(f"limited:{device} could not run ({type(exc).__name__})")

    def _scanner(self, managers: list[SupervisedLeaseManager], **_: Any) -> None:
        """The interval worker's target (a supervisor pool thread)."""
        if self.fleet.scan(fleet_target(min(1.0, self.progress()))):
            for manager in managers:
                manager.notify_scale_changed()  # resize now, not at check_interval

    def _thread(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name)
        thread.start()
        self.threads.append(thread)

    # ------------------------------------------------------------- the run

    def _sample(
        self, managers: list[tuple[str, SupervisedLeaseManager]], grinder: SupervisedWorkGrinder
    ) -> Snapshot:
        now = time.monotonic()
        gstats = grinder.stats(timeout=5)
        ended = gstats["items_completed"] + gstats["items_failed"]
        self.rates.append((now, ended))
        t0, n0 = self.rates[0]
        rate = (ended - n0) / (now - t0) if now > t0 else 0.0
        self.peak_rate = max(self.peak_rate, rate)
        mstats = []
        for label, manager in managers:
            stats = manager.stats()
            desired, total = self.peaks.get(label, (0, 0))
            self.peaks[label] = (max(desired, stats["desired"]), max(total, stats["total"]))
            mstats.append((label, stats))
        return Snapshot(
            elapsed=now - self.started,
            seconds=self.seconds,
            devices=self.fleet.count(),
            devices_peak=self.fleet.peak,
            last_scan=self.fleet.last_scan,
            managers=mstats,
            grinder=gstats,
            items_per_second=rate,
            async_items=self.async_items,
            analyses=self.analyses,
            notes=list(self.notes),
        )

    def run(self) -> int:
        from ..supervision.workers import background_worker

        task_supervisor.start()
        interrupted = False
        try:
            # surplus_idle_seconds: pools above the target wait a little before
            # going, so bursts reuse them instead of rebuilding (processes!).
            common: dict[str, Any] = {"min_pools": 1, "size_provider": self.fleet.count,
                                      "check_interval": 30, "lease_grace_seconds": 0.5,
                                      "surplus_idle_seconds": 2.0}
            io = task_supervisor.create_lease_manager(
                "io", backend="thread", max_pools=6, units_per_pool=8, workers_per_pool=4,
                **common,
            )
            cpu = task_supervisor.create_lease_manager(
                "cpu", backend="process", max_pools=3, units_per_pool=15, workers_per_pool=1,
                **common,
            )
            managers = [("io", io), ("cpu", cpu)]
            grinder = task_supervisor.create_work_grinder(
                "readings", io, batch_size_threshold=64, max_wait_seconds=0.05, lease_seconds=5,
            )
            scanner = background_worker(interval=0.25, name="fleet-scanner")(self._scanner)
            url = self._serve_status() if self.serve else None  # before the first frame
            self.started = time.monotonic()
            scanner.start(managers=[io, cpu])
            feed_loop = task_supervisor.create_aloop("feed")
            async_feed = feed_loop.submit(self._async_feeder, grinder)
            for i in range(FEEDERS):
                self._thread(f"demo-feeder-{i}", self._feeder, i, grinder)
            for i in range(3):
                self._thread(f"demo-analyser-{i}", self._analyser, i, cpu)
            try:
                while self.progress() < 1.0:
                    self.screen.show(self._sample(managers, grinder))
                    self.stop.wait(FRAME_SECONDS)
            except KeyboardInterrupt:
                interrupted = True
                self.notes.append("interrupted: stopping early")
            self.stop.set()
            for thread in self.threads:
                thread.join()
            async_feed.result(timeout=30)
            final = self._sample(managers, grinder)
            self.screen.show(final, final=True)
            self.work_done = time.monotonic()
            if url is not None and not interrupted:
                self._keep_serving(url)
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join()
            task_supervisor.stop()  # scanner, grinder (drains), managers, aloops, pool
            self.screen.close()
        self._print_summary(final, io, cpu, grinder)
        return 130 if interrupted else 0

    def _serve_status(self) -> str:
        try:
            url = task_supervisor.serve_status(port=self.port)
        except OSError as exc:  # the port is taken, say
            raise SystemExit(
                f"python -m neoleasepool demo: cannot serve the status page on port "
                f"{self.port}: {exc.strerror or exc}"
            ) from None
        self._say(f"status page: {url}")
        return url

    def _keep_serving(self, url: str) -> None:
        """Serve the status page until Ctrl-C, which stops the supervisor."""
        self._say(f"work done; the status page is still served at {url}: press Ctrl-C to stop")
        try:
            task_supervisor.block()  # Ctrl-C in there stops the supervisor
        except KeyboardInterrupt:  # (pressed just before the wait began)
            pass

    def _say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _print_summary(
        self,
        final: Snapshot,
        io: SupervisedLeaseManager,
        cpu: SupervisedLeaseManager,
        grinder: SupervisedWorkGrinder,
    ) -> None:
        m = {"io": io.stats(), "cpu": cpu.stats()}
        g = grinder.stats()
        elapsed = (self.work_done or time.monotonic()) - self.started
        ended = g["items_completed"] + g["items_failed"]
        balanced = g["items_submitted"] == ended + g["items_cancelled"] and g["pending"] == 0
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        children = multiprocessing.active_children()

        def both(label: str, *keys: str) -> tuple[str, str, str]:
            return (
                label,
                " / ".join(f"{m['io'][k]:,}" for k in keys),
                " / ".join(f"{m['cpu'][k]:,}" for k in keys),
            )

        peak = {k: f"{d} / {t}" for k, (d, t) in self.peaks.items()}
        rows: list[tuple[str, ...]] = [
            ("lease managers", "io (thread)", "cpu (process)"),
            ("peak pools desired / total", peak["io"], peak["cpu"]),
            both("leases granted / released / revoked",
                 "leases_granted", "leases_released", "leases_revoked"),
            both("pools created / retired / broken", "pools_created", "pools_retired",
                 "pools_broken"),
            (f"grinder {g['name']!r} on io",),
            ("items submitted", f"{g['items_submitted']:,}"),
            ("items done", f"{g['items_completed']:,}"),
            ("items failed (SensorGlitch)", f"{g['items_failed']:,}"),
            ("items cancelled (device left)", f"{g['items_cancelled']:,}"),
            ("of which async (asubmit)", f"{self.async_items:,}"),
            ("each ended exactly once", "yes" if balanced else "NO"),
            ("throughput, items/s", f"{ended / elapsed:,.0f} (peak {self.peak_rate:,.0f})"),
            ("batches run / leases acquired", f"{g['batches_run']:,} / {g['leases_acquired']:,}"),
            ("work on process leases",),
            ("analyses done", f"{self.analyses:,}"),
            ("jobs revoked at hard expiry", f"{self.revoked_jobs}"),
            ("jobs stopped by time limit", f"{self.timed_out_jobs}"),
            ("devices",),
            ("peak online", f"{self.fleet.peak}"),
            ("connects / disconnects", f"{self.fleet.connects} / {self.fleet.disconnects}"),
            ("shutdown",),
            ("threads left", ", ".join(left) or "none"),
            ("child processes left", f"{len(children)}" if children else "none"),
        ]
        title = f"neoleasepool demo: summary after {elapsed:.1f} s"
        self.out.write("\n".join(["", *summary_lines(rows, title), ""]) + "\n")
        self.out.flush()


def run_demo(
    seconds: float, out: TextIO, *, live: bool, serve: bool = False, port: int = 0
) -> int:
    """Run the demo for about ``seconds``; return the exit code.

    Args:
        seconds: How long the work runs.
        out: Where the view and the summary go.
        live: Redraw the view in place (a terminal).
        serve: Serve the status page on ``port`` (``0``: a free one), and
            after the work keep serving until Ctrl-C.
        port: The status page's port.
    """
    return Demo(seconds, out, live=live, serve=serve, port=port).run()
