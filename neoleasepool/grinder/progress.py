"""A one-line progress bar for ``map(progress=True)``, without dependencies.

Written to a terminal only (``isatty()``): in a log file or a pipe a
carriage-return bar is noise, so there it writes nothing. Redrawn at most
every ``REFRESH_SECONDS``, and finished with a newline.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "progress_bar"]

#: Shortest time between two redraws, in seconds.
REFRESH_SECONDS = 0.1

#: Width of the bar itself, in characters.
WIDTH = 30


class ProgressBar:
    """Counts results and draws ``[#####     ] 512/1,000 51% 12,345/s``.

    Args:
        total: How many results to expect, or ``None`` if unknown (a
            generator): then it shows the count and the rate only.
        stream: Where to draw (a terminal).
    """

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, count: int) -> None:
        """``count`` more results arrived."""
        self.done += count
        now = time.monotonic()
        if now - self._drawn >= REFRESH_SECONDS:
            self._drawn = now
            self._draw(now)

    def line(self, now: float) -> str:
        """The bar as text at ``now``."""
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            filled = min(WIDTH, WIDTH * self.done // self.total)
            percent = min(100, 100 * self.done // self.total)
            return (
                f"[{'#' * filled}{' ' * (WIDTH - filled)}] {self.done:,}/{self.total:,} "
                f"{percent}% {rate:,.0f}/s"
            )
        return f"{self.done:,} done {rate:,.0f}/s"

    def _draw(self, now: float) -> None:
        self._stream.write("\r" + self.line(now))
        self._stream.flush()

    def finish(self) -> None:
        """Draw the final figures and end the line."""
        self._draw(time.monotonic())
        self._stream.write("\n")
        self._stream.flush()


def progress_bar(
    wanted: bool, total: int | None, stream: TextIO | None = None
) -> ProgressBar | None:
    """A bar on ``stream`` (default: ``sys.stderr``) if ``wanted`` and it is a terminal."""
    stream = sys.stderr if stream is None else stream
    if not wanted or not stream.isatty():
        return None
    return ProgressBar(total, stream)
