"""Layer 6: ``python -m neoleasepool``: demo, bench and info."""

from __future__ import annotations

from .commands import main

__all__ = ["main"]
