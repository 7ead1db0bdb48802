"""Metric families as the exporters see them: names, kinds, help, samples.

A :class:`Family` is one metric (``neoleasepool_grinder_items_total``)
with its samples, one per set of labels. A sample's value is a number, or
a :class:`~neoleasepool._util.tally.HistogramSnapshot` for a histogram.
Names follow Prometheus' conventions: the ``neoleasepool_`` prefix, base
units (``_seconds``), counters ending in ``_total``, and labels that
name a component (``manager``, ``grinder``, ``aloop``, ``worker``,
``backend``) or a small fixed set (``outcome``, ``reason``, ``state``):
never an item, an argument or a lease.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .._util.tally import HistogramSnapshot

__all__ = ["Family", "Kind", "Labels", "Sample"]

Kind = Literal["counter", "gauge", "histogram"]
#: Label names and values, in order.
Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, "float | HistogramSnapshot"]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Family:
    """One metric and its samples.

    Raises:
        ValueError: If the name is not a valid metric name, or a counter's
            name does not end in ``_total``.
    """

    name: str
    kind: Kind
    help: str
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"not a valid metric name: {self.name!r}")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"only counters end in _total: {self.name!r} is a {self.kind}")

    def add(self, value: float | HistogramSnapshot | None, **labels: str) -> None:
        """Add a sample (``None``: nothing known yet, no sample)."""
        if value is None:
            return
        for name in labels:
            if not _LABEL.match(name) or name.startswith("__"):
                raise ValueError(f"not a valid label name: {name!r}")
        if isinstance(value, bool):
            value = float(value)
        self.samples.append((tuple(labels.items()), value))
