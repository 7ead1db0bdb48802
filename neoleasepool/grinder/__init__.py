"""Layer 2: many small submissions, batched onto leased pools.

:class:`WorkGrinder` is a thin facade over the parts: items and their state
machine, the queue and batching rule, lease pipelining, chunks (one kind per
backend capability), and the one thread hand-off. The path of one item is
drawn in ``doc/architecture.md``.
"""

from __future__ import annotations

from .facade import WorkGrinder

__all__ = ["WorkGrinder"]
