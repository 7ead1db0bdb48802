"""The OpenTelemetry bridge, read back with the SDK's in-memory reader and
span exporter."""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="pip install -e '.[test]' (opentelemetry-sdk)")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from neoleasepool import TaskSupervisor
from neoleasepool.observe.families import CATALOG
from neoleasepool.observe.otel import instrument, otel_name

from .support import started_supervisor


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    with started_supervisor(f"ot-{request.node.name}", max_threads=4, stop_wait=15) as s:
        yield s


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Data points by instrument name, from one collection."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def point(found: dict[str, list[Any]], name: str, **attributes: str) -> Any:
    matching = [p for p in found[name] if dict(p.attributes) == attributes]
    assert len(matching) == 1, (name, attributes, found.get(name))
    return matching[0]


def test_otel_names_come_back_as_ours_through_a_prometheus_exporter() -> None:
    assert otel_name("grinder_item_latency_seconds") == ("neoleasepool.grinder.item_latency", "s")
    assert otel_name("manager_leases_granted_total") == (
        "neoleasepool.manager.leases_granted", ""
    )
    assert otel_name("info") == ("neoleasepool.info", "")
    assert len({otel_name(name)[0] for name in CATALOG}) == len(CATALOG)


def test_the_bridge_publishes_counts_gauges_and_item_timings(sup: TaskSupervisor) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    manager = sup.create_lease_manager("cpu", max_pools=2)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    bridge = instrument(sup, meter_provider=provider)
    try:
        assert [grinder.submit(abs, -i) for i in range(25)][-1] == 24
        found = points(reader)
        labels = {"grinder": "g", "manager": "cpu"}
        ok = point(found, "neoleasepool.grinder.items", outcome="ok", **labels)
        assert ok.value == 25
        latency = point(found, "neoleasepool.grinder.item_latency", **labels)
        assert latency.count == 25
        assert list(latency.explicit_bounds)[:3] == [0.00001, 0.000025, 0.00005]
        granted = point(found, "neoleasepool.manager.leases_granted",
                        manager="cpu", backend="thread")
        assert granted.value == manager.stats()["leases_granted"]
        assert point(found, "neoleasepool.manager.pools_max",
                     manager="cpu", backend="thread").value == 2
    finally:
        bridge.close()
    # Closed: nothing more is mirrored into the histograms.
    assert [grinder.submit(abs, -i) for i in range(5)][-1] == 4
    after = points(reader)
    assert point(after, "neoleasepool.grinder.item_latency", **labels).count == 25
    assert "neoleasepool.grinder.items" not in after or not after["neoleasepool.grinder.items"]


def test_a_grinder_made_after_instrument_is_mirrored_from_the_next_collection(
    sup: TaskSupervisor,
) -> None:
    reader = InMemoryMetricReader()
    bridge = instrument(sup, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        manager = sup.create_lease_manager("cpu", max_pools=1)
        grinder = sup.create_work_grinder("late", manager, max_wait_seconds=0.01)
        reader.collect()  # a collection attaches the new grinder
        assert [grinder.submit(abs, -i) for i in range(3)][-1] == 2
        found = points(reader)
        latency = point(found, "neoleasepool.grinder.item_latency",
                        grinder="late", manager="cpu")
        assert latency.count == 3
    finally:
        bridge.close()


def test_spans_started_in_offloaded_work_keep_their_parent(sup: TaskSupervisor) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)

    def work(name: str) -> None:
        with tracer.start_as_current_span(name):
            pass

    with tracer.start_as_current_span("request") as parent, \
            concurrent.futures.ThreadPoolExecutor(1) as plain:
        grinder.submit(work, "in-grinder")
        with manager.lease() as lease:
            lease.run(work, "in-lease")
        plain.submit(work, "in-plain-pool").result()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    parent_id = parent.get_span_context().span_id
    assert spans["in-grinder"].parent is not None
    assert spans["in-grinder"].parent.span_id == parent_id
    assert spans["in-lease"].parent is not None
    assert spans["in-lease"].parent.span_id == parent_id
    assert spans["in-plain-pool"].parent is None  # what a plain pool does


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, sup: TaskSupervisor
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"neoleasepool\[otel\]"):
        instrument(sup)


def test_a_grinder_made_again_under_its_old_name_gets_a_mirror_of_its_own(
    sup: TaskSupervisor,
) -> None:
    reader = InMemoryMetricReader()
    bridge = instrument(sup, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        manager = sup.create_lease_manager("cpu", max_pools=1)
        first = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
        reader.collect()
        assert [first.submit(abs, -i) for i in range(5)][-1] == 4
        sup.stop()  # and started again: a new grinder under the old name
        sup.start()
        manager = sup.create_lease_manager("cpu", max_pools=1)
        second = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
        reader.collect()
        assert [second.submit(abs, -i) for i in range(5)][-1] == 4
        latency = point(points(reader), "neoleasepool.grinder.item_latency",
                        grinder="g", manager="cpu")
        assert latency.count == 10
    finally:
        bridge.close()


def test_the_otel_prometheus_exporter_gives_back_our_names(sup: TaskSupervisor) -> None:
    exporter = pytest.importorskip("opentelemetry.exporter.prometheus")
    from prometheus_client import REGISTRY, generate_latest

    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    reader = exporter.PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    bridge = instrument(sup, meter_provider=provider)
    try:
        assert [grinder.submit(abs, -i) for i in range(3)][-1] == 2

        def names(text: str) -> set[str]:
            found = {line.split("{")[0].split(" ")[0] for line in text.splitlines()}
            # (lag gauges appear half a second after a loop starts)
            return {n for n in found if n.startswith("neoleasepool_") and "_lag_" not in n}

        theirs = names(generate_latest(REGISTRY).decode())
        ours = names(sup.metrics_text())
        assert ours == theirs
        assert "neoleasepool_grinder_item_latency_seconds_bucket" in ours
    finally:
        bridge.close()
        provider.shutdown()  # unregisters the exporter's collector
