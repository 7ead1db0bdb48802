"""``neotasker.workers``'s place: code that imports the workers from here keeps working.

The workers live in :mod:`neoleasepool.supervision`.
"""

from __future__ import annotations

from .supervision.workers import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)

__all__ = [
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "background_worker",
]
