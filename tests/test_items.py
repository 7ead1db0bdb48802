"""Grinder items: the state table, and cancelling a thread item."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from neoleasepool.grinder.items import TRANSITIONS, ThreadItem

ARCHITECTURE = Path(__file__).resolve().parents[1] / "doc" / "architecture.md"


class Sink:
    def __init__(self) -> None:
        self.ends: Counter[str] = Counter()
        self.cancelled: list[Any] = []
        self._lock = threading.Lock()

    carries_context = False

    def item_cancelled(self, item: Any) -> None:
        self.cancelled.append(item)

    def item_ended(self, item: Any, how: str, error: Any = None) -> None:
        with self._lock:
            self.ends[how] += 1


def test_the_documented_state_table_is_the_one_in_code() -> None:
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", ARCHITECTURE.read_text(), re.M)
    documented = {
        state: frozenset(re.findall(r"`(\w+)`", nexts)) for state, nexts in rows
        if state in TRANSITIONS
    }
    assert documented == TRANSITIONS


def test_a_done_callback_may_cancel_another_item() -> None:
    # Future.cancel() runs the callbacks itself: a "cancel the siblings"
    # callback must not find a lock of ours held.
    sink = Sink()
    first, sibling = (ThreadItem(sink, int, (), {}) for _ in range(2))
    first.add_done_callback(lambda _: sibling.cancel())
    returned = threading.Event()
    thread = threading.Thread(target=lambda: (first.cancel(), returned.set()))
    thread.start()
    assert returned.wait(10), "cancel() deadlocked in its own callback"
    thread.join(10)
    assert first.cancelled() and sibling.cancelled()
    assert sink.ends == Counter({"cancelled": 2})


def test_an_item_cancelled_from_many_threads_at_once_is_counted_once() -> None:
    for _ in range(200):
        sink = Sink()
        item = ThreadItem(sink, int, (), {})
        start = threading.Barrier(4)

        def cancel(item: ThreadItem = item, start: threading.Barrier = start) -> None:
            start.wait()
            assert item.cancel()

        threads = [threading.Thread(target=cancel) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sink.ends == Counter({"cancelled": 1})
        assert sink.cancelled == [item]
