"""Our own process pool: :class:`WorkerPool`, with control of each worker.

Each worker is a process with its own pipe that runs one call at a time,
so a call can have a hard time limit (its worker is stopped), a soft one
(an exception inside the function), be cancelled while it runs, or die
with its worker, and only that call fails. Workers are recycled between
calls by count, memory or age.

Modules: ``pool`` (the public face and how its threads share the work),
``manager`` (the thread that owns the workers), ``workers`` (one worker as
the parent sees it), ``child`` (the worker process itself), ``futures``
(cancellable running calls), ``protocol`` (what goes over the pipes),
``shared`` (the state both threads see).
"""

from __future__ import annotations

from .pool import WorkerPool

__all__ = ["WorkerPool"]
