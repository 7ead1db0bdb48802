"""Work functions for benchmarks; module-level so process workers can import them."""

from __future__ import annotations

import time


def noop(*_args: object) -> None:
    """Do nothing."""


def square(value: int) -> int:
    """A tiny CPU item."""
    return value * value


def block_2ms(*_args: object) -> None:
    """Block the worker for 2 ms (releases the GIL, like I/O)."""
    time.sleep(0.002)


def hang(seconds: float) -> None:
    """A call that overstays (stopped by its time limit)."""
    time.sleep(seconds)


def spin(rounds: int) -> int:
    """Pure-Python CPU work that holds the GIL where there is one."""
    total = 0
    for i in range(rounds):
        total += i * i % 7
    return total
