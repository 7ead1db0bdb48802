"""The demo's simulated fleet of devices, and the work it sends.

The work functions live at module level here so that process workers
(started with forkserver) can import them; :mod:`.demo` drives them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import random
import threading
import time
from typing import Any

__all__ = [
    "Fleet", "SensorGlitch", "checksum", "fingerprint", "fleet_target", "hang", "read_sensor",
]


class SensorGlitch(Exception):
    """A simulated read failure: fails its own item, nothing else."""


def read_sensor(device: str, seq: int) -> int:
    """A reading: about 3 ms of I/O; one in 97 fails."""
    time.sleep(0.003)
    if seq % 97 == 0:
        raise SensorGlitch(f"{device} did not answer (reading {seq})")
    return (seq * 31 + len(device)) % 1000


def checksum(block: int) -> str:
    """A little CPU work for the async feeder's items."""
    return hashlib.sha256(block.to_bytes(8, "little") * 64).hexdigest()[:8]


def fingerprint(device: str, rounds: int) -> str:
    """CPU-heavy analysis, run in a worker process."""
    digest = device.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:12]


def hang(seconds: float) -> None:
    """A job that takes far longer than its lease allows."""
    time.sleep(seconds)


def fleet_target(progress: float) -> int:
    """How many devices the scripted fleet wants online at ``progress`` (0-1)."""
    points = [(0.0, 3), (0.3, 40), (0.5, 10), (0.7, 28), (0.9, 4), (1.0, 2)]
    for (p0, n0), (p1, n1) in itertools.pairwise(points):
        if progress <= p1:
            return round(n0 + (n1 - n0) * (progress - p0) / (p1 - p0))
    return points[-1][1]


class Fleet:
    """The simulated devices, and the readings each has in the grinder."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._online: list[str] = []
        self._numbers = iter(range(1, 10_000))
        self._futures: dict[str, set[concurrent.futures.Future[Any]]] = {}
        self.peak = 0
        self.connects = 0
        self.disconnects = 0
        self.last_scan = (0, 0)

    def count(self) -> int:
        """The managers' size provider; called on their aloops."""
        with self._lock:
            return len(self._online)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._online)

    def scan(self, target: int) -> bool:
        """Move towards ``target`` devices, with some churn; True if changed."""
        with self._lock:
            gone: list[str] = []
            if self._online and self._rng.random() < 0.4:
                gone.append(self._online.pop(self._rng.randrange(len(self._online))))
            while len(self._online) > target:
                gone.append(self._online.pop(self._rng.randrange(len(self._online))))
            came = 0
            while len(self._online) < target and came < 6:
                kind = self._rng.choice(("cam", "therm", "meter"))
                self._online.append(f"{kind}-{next(self._numbers):03d}")
                came += 1
            self.peak = max(self.peak, len(self._online))
            self.connects += came
            self.disconnects += len(gone)
            self.last_scan = (came, len(gone))
            doomed = [f for name in gone for f in self._futures.pop(name, ())]
        for future in doomed:
            future.cancel()  # still queued: removed at once and never runs
        return bool(came or gone)

    def track(self, device: str, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            if device not in self._futures:
                self._futures[device] = set()
            self._futures[device].add(future)
        future.add_done_callback(lambda f: self._forget(device, f))

    def _forget(self, device: str, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.get(device, set()).discard(future)
