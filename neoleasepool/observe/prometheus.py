"""Prometheus' text exposition format 0.0.4, written by hand.

For each family: a ``# HELP`` line (backslash and newline escaped), a
``# TYPE`` line, then its samples, ``name{label="value",...} number``
with label values escaped (backslash, double quote, newline). A histogram
gives cumulative ``_bucket`` samples with an ``le`` label, the last one
``le="+Inf"`` equal to ``_count``, then ``_sum`` and ``_count``.
Served with :data:`CONTENT_TYPE`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

from .._util.tally import HistogramSnapshot
from .model import Family, Labels

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(families: Iterable[Family]) -> str:
    """The families as exposition text (ends with a newline)."""
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            if isinstance(value, HistogramSnapshot):
                lines.extend(_histogram(family.name, labels, value))
            else:
                lines.append(f"{family.name}{_labels(labels)} {number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _histogram(name: str, labels: Labels, value: HistogramSnapshot) -> list[str]:
    inner = _inner(labels)
    head = f"{name}_bucket{{{inner}," if inner else f"{name}_bucket{{"
    lines = [
        f'{head}le="{_bound(bound)}"}} {count}' for bound, count in value.cumulative()
    ]
    suffix = _labels(labels)
    lines.append(f"{name}_sum{suffix} {number(value.sum)}")
    lines.append(f"{name}_count{suffix} {value.count}")
    return lines


@functools.lru_cache(maxsize=256)
def _bound(bound: float) -> str:
    """An ``le`` value (the same few bounds recur in every scrape)."""
    return number(bound)


def number(value: float) -> str:
    """A sample value or ``le`` bound as the format spells it."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: Labels) -> str:
    return "{" + _inner(labels) + "}" if labels else ""


def _inner(labels: Labels) -> str:
    return ",".join(f'{name}="{_escape_value(value)}"' for name, value in labels)


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
