"""The metrics through OpenTelemetry: the ``neoleasepool[otel]`` extra.

:func:`instrument` creates, on a meter of the given (or the global)
``MeterProvider``, one instrument per metric of :data:`~.families.CATALOG`:

* counters and gauges are *observable* instruments whose callbacks read
  the supervisor when the SDK collects (one reading serves all callbacks
  of a collection, see :class:`OtelBridge`);
* the grinders' item timings are histograms fed as items end: each
  supervised grinder gets a *timing mirror* that records its items'
  queue, run and latency seconds (a grinder made later is picked up at the
  next collection; ``metrics=False`` grinders give none).

Names follow OpenTelemetry's style and come back as ours through its
Prometheus exporter (``tests/test_otel.py`` checks every one):
``neoleasepool_grinder_item_latency_seconds`` is
``neoleasepool.grinder.item_latency`` with unit ``s``, a counter loses its
``_total``, and counts have no unit. Labels become attributes.

Trace context needs nothing from here: grinder items and ``lease.run`` on
threads already run in a copy of the caller's ``contextvars`` context, so
a span started in offloaded work keeps its parent.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._util.tally import TIME_BUCKETS
from .._version import __version__
from ..grinder.facade import WorkGrinder
from ..supervision.core import SupervisorCore
from ..sync.grinder import SupervisedWorkGrinder
from .families import CATALOG, PREFIX, families
from .model import Family
from .reading import read

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

__all__ = ["OtelBridge", "instrument", "otel_name"]

#: A reading serves every callback of one collection made within this time.
READING_REUSE_SECONDS = 1.0
_TIMINGS = ("queue", "run", "latency")


def otel_name(name: str) -> tuple[str, str]:
    """The OpenTelemetry name and unit of a catalog metric (counts have no
    unit: OpenTelemetry's Prometheus exporter would turn ``"1"`` on a gauge
    into a ``_ratio`` suffix)."""
    unit = ""
    if name.endswith("_total"):
        name = name[: -len("_total")]
    if name.endswith("_seconds"):
        name, unit = name[: -len("_seconds")], "s"
    component, _, rest = name.partition("_")
    return f"{PREFIX[:-1]}.{component}.{rest}" if rest else f"{PREFIX[:-1]}.{component}", unit


def instrument(
    supervisor: SupervisorCore | None = None, *, meter_provider: MeterProvider | None = None
) -> OtelBridge:
    """Publish ``supervisor``'s metrics (default: ``task_supervisor``)
    through OpenTelemetry.

    Args:
        supervisor: The supervisor to read.
        meter_provider: Where the instruments go; default the global one
            (``opentelemetry.metrics.get_meter_provider()``).

    Returns:
        The bridge; :meth:`OtelBridge.close` stops it.

    Raises:
        ImportError: If ``opentelemetry-api`` is not installed (``pip
            install 'neoleasepool[otel]'``).
    """
    try:
        from opentelemetry import metrics
    except ImportError as exc:  # the optional extra is missing
        raise ImportError(
            "neoleasepool's OpenTelemetry bridge needs opentelemetry-api: "
            "pip install 'neoleasepool[otel]'"
        ) from exc
    if supervisor is None:
        from ..supervision.default import default_supervisor

        supervisor = default_supervisor()
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    return OtelBridge(supervisor, provider.get_meter("neoleasepool", __version__))


class OtelBridge:
    """The instruments of one supervisor on one meter.

    Callbacks run on the SDK's collecting thread. The first one of a
    collection takes a reading; the others reuse it for
    :data:`READING_REUSE_SECONDS` (under ``_lock``, so one reading at a
    time). Mirrors run on the threads that end items; OpenTelemetry's
    instruments are thread-safe.
    """

    def __init__(self, supervisor: SupervisorCore, meter: Any) -> None:
        from opentelemetry.metrics import Observation

        self.supervisor = supervisor
        self._observation = Observation
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Family]] | None = None
        self._closed = False
        # The grinders given a mirror, by the grinder object itself (a new
        # grinder under an old name gets its own), without keeping them.
        self._mirrored: weakref.WeakSet[WorkGrinder] = weakref.WeakSet()
        self._histograms: dict[str, Histogram] = {}
        for name, (kind, _, meaning) in CATALOG.items():
            otel, unit = otel_name(name)
            if kind == "histogram":
                self._histograms[name] = _histogram(meter, otel, unit, meaning)
                continue
            create = (
                meter.create_observable_counter if kind == "counter"
                else meter.create_observable_gauge
            )
            create(otel, callbacks=[functools.partial(self._observe, name)], unit=unit,
                   description=meaning)
        self._attach_mirrors()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<OtelBridge {self.supervisor.id!r} {state} grinders={len(self._mirrored)}>"

    def close(self) -> None:
        """Stop: callbacks observe nothing more, and grinders stop mirroring."""
        with self._lock:
            self._closed = True
            mirrored = list(self._mirrored)
            self._mirrored.clear()
        for grinder in mirrored:
            grinder.set_timing_mirror(None)

    # ------------------------------------------------------------ callbacks

    def _observe(self, name: str, options: CallbackOptions) -> Iterable[Observation]:
        by_name = self._families()
        family = by_name.get(PREFIX + name)
        if family is None:
            return []
        return [
            self._observation(float(value), dict(labels))
            for labels, value in family.samples
            if isinstance(value, (int, float))
        ]

    def _families(self) -> dict[str, Family]:
        with self._lock:
            if self._closed:
                return {}
            now = time.monotonic()
            self._attach_mirrors_locked()  # grinders made since the last callback
            if self._cached is None or now - self._cached[0] > READING_REUSE_SECONDS:
                reading = read(self.supervisor)
                self._cached = (now, {f.name: f for f in families(reading)})
            return self._cached[1]

    # -------------------------------------------------------------- mirrors

    def _attach_mirrors(self) -> None:
        with self._lock:
            self._attach_mirrors_locked()

    def _attach_mirrors_locked(self) -> None:
        """Give each supervised grinder not mirrored yet its timing mirror."""
        for scheduler in self.supervisor.get_schedulers().values():
            if not isinstance(scheduler, SupervisedWorkGrinder):
                continue
            grinder = scheduler.grinder
            if grinder not in self._mirrored:
                attributes = {"grinder": scheduler.name, "manager": scheduler.manager.name}
                grinder.set_timing_mirror(functools.partial(_record, self._histograms, attributes))
                self._mirrored.add(grinder)


def _record(
    histograms: dict[str, Histogram], attributes: dict[str, str],
    queue: float, run: float, latency: float,
) -> None:
    histograms["grinder_item_queue_seconds"].record(queue, attributes)
    histograms["grinder_item_run_seconds"].record(run, attributes)
    histograms["grinder_item_latency_seconds"].record(latency, attributes)


def _histogram(meter: Any, name: str, unit: str, meaning: str) -> Histogram:
    """A histogram with our buckets where the API can take them as advice."""
    try:
        histogram: Histogram = meter.create_histogram(
            name, unit=unit, description=meaning,
            explicit_bucket_boundaries_advisory=list(TIME_BUCKETS),
        )
    except TypeError:  # opentelemetry-api older than 1.23: its default buckets
        histogram = meter.create_histogram(name, unit=unit, description=meaning)
    return histogram
