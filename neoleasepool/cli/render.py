"""The demo's terminal view: frames, plain status lines, the summary.

Everything here is a pure function of a :class:`Snapshot`, so the view can
be read (and tested) without running anything.  :class:`Screen` is the only
part with side effects: on a terminal it redraws the frame in place with
ANSI escapes; elsewhere it prints one plain line now and then.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Screen", "Snapshot", "frame_lines", "plain_line", "progress_bar", "summary_lines"]

#: Most leases listed per manager in a frame; the rest are counted.
MAX_LEASE_ROWS = 5

_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"
_CLEAR_LINE = "\x1b[2K"
_CLEAR_BELOW = "\x1b[J"


@dataclass
class Snapshot:
    """What the demo looks like at one moment; plain data only.

    Attributes:
        elapsed: Seconds since the demo started.
        seconds: The planned length of the run.
        devices: Devices online now.
        devices_peak: Most devices online at once so far.
        last_scan: ``(connected, disconnected)`` by the latest scan.
        managers: ``(label, stats)`` per lease manager, ``stats`` being the
            facade's ``stats()``.
        grinder: The grinder facade's ``stats()``.
        items_per_second: Grinder items ended per second, recently.
        async_items: Items the async feeder has had answered.
        analyses: Analysis jobs run on process leases so far.
        notes: Events worth a line (a revoked lease, ...), newest last.
    """

    elapsed: float
    seconds: float
    devices: int = 0
    devices_peak: int = 0
    last_scan: tuple[int, int] = (0, 0)
    managers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    grinder: dict[str, Any] = field(default_factory=dict)
    items_per_second: float = 0.0
    async_items: int = 0
    analyses: int = 0
    notes: list[str] = field(default_factory=list)


def progress_bar(fraction: float, width: int, *, unicode: bool = True) -> str:
    """A bar ``width`` characters wide, filled to ``fraction`` (0 to 1)."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    full, empty = ("\u2588", "\u2591") if unicode else ("#", ".")
    return full * filled + empty * (width - filled)


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _lease_rows(label: str, stats: dict[str, Any]) -> list[str]:
    leases = sorted(stats.get("leases", []), key=lambda r: r["seconds_until_soft_expiry"])
    rows = []
    for lease in leases[:MAX_LEASE_ROWS]:
        soft = lease["seconds_until_soft_expiry"]
        hard = lease["seconds_until_hard_expiry"]
        flag = "  overdue: revoked at hard expiry" if soft <= 0 and lease["state"] == "live" else ""
        rows.append(
            f"  {label:<6} {lease['owner'] or '-':<24} {lease['state']:<9}"
            f"{lease['pending']:>7} {soft:>10.1f} s {hard:>10.1f} s{flag}"
        )
    if len(leases) > MAX_LEASE_ROWS:
        rows.append(f"  {label:<6} ... and {len(leases) - MAX_LEASE_ROWS} more")
    return rows


def frame_lines(snap: Snapshot, *, unicode: bool = True, bar_width: int = 40) -> list[str]:
    """The live view as lines (no escapes, no trailing newlines)."""
    fraction = snap.elapsed / snap.seconds if snap.seconds else 1.0
    lines = [
        "neoleasepool demo: a plain sync script driving two lease managers and a grinder",
        f"[{progress_bar(fraction, bar_width, unicode=unicode)}] "
        f"{min(snap.elapsed, snap.seconds):5.1f} / {snap.seconds:.1f} s "
        f"{min(fraction, 1.0):4.0%}      Ctrl-C stops early",
        "",
        f"devices   {snap.devices:>3} online   last scan +{snap.last_scan[0]} "
        f"-{snap.last_scan[1]}   peak {snap.devices_peak}",
        "",
        "  pools  backend   desired  total  leased  idle  waiting  granted  revoked",
    ]
    for label, stats in snap.managers:
        lines.append(
            f"  {label:<6} {stats['backend']:<9}{stats['desired']:>7}{stats['total']:>7}"
            f"{stats['leased']:>8}{stats['available']:>6}{stats['waiting']:>9}"
            f"{stats['leases_granted']:>9,}{stats['leases_revoked']:>9}"
        )
    lines += ["", "  leases owner                    state      pending  soft expiry  hard expiry"]
    rows = [row for label, stats in snap.managers for row in _lease_rows(label, stats)]
    lines += rows or ["  (none)"]
    g = snap.grinder
    lines += [
        "",
        f"grinder   {g.get('name', '?')!r}  queue {g.get('pending', 0):>5,}   batches in flight "
        f"{g.get('batches_in_flight', 0):>2}   items/s {snap.items_per_second:>8,.0f}",
        f"          done {g.get('items_completed', 0):>8,}   failed {g.get('items_failed', 0):>5,}"
        f"   cancelled {g.get('items_cancelled', 0):>5,}   batches {g.get('batches_run', 0):>6,}",
        f"feeders   4 threads (enqueue) + a coroutine on an aloop (asubmit: "
        f"{snap.async_items:,} answered)",
        f"analyses  {snap.analyses:,} on process leases, 2 calls per lease",
    ]
    if snap.notes:
        lines += ["", *(f"note      {note}" for note in snap.notes[-2:])]
    return lines


def plain_line(snap: Snapshot) -> str:
    """One status line for logs and pipes (no escapes)."""
    pools = " ".join(
        f"{label}={s['leased']}/{s['total']}/{s['desired']}" for label, s in snap.managers
    )
    leases = sum(len(s.get("leases", [])) for _, s in snap.managers)
    g = snap.grinder
    fraction = min(1.0, snap.elapsed / snap.seconds) if snap.seconds else 1.0
    return (
        f"[{min(snap.elapsed, snap.seconds):5.1f}/{snap.seconds:.0f}s {fraction:4.0%}] "
        f"devices={snap.devices} pools(leased/total/desired) {pools} leases={leases} "
        f"queue={g.get('pending', 0)} in_flight={g.get('batches_in_flight', 0)} "
        f"items/s={snap.items_per_second:.0f} done={g.get('items_completed', 0)} "
        f"failed={g.get('items_failed', 0)} cancelled={g.get('items_cancelled', 0)}"
    )


def summary_lines(rows: list[tuple[str, ...]], title: str) -> list[str]:
    """A table: the first row is the header, a row of one cell a section."""
    cols = max(len(r) for r in rows)
    widths = [max(len(r[i]) for r in rows if len(r) == cols) for i in range(cols)]
    out = [title, ""]
    for row in rows:
        if len(row) == 1:
            out.append(row[0])
            continue
        values = zip(row[1:], widths[1 : len(row)], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in values]
        out.append("  " + "   ".join(cells).rstrip())
    return out


class Screen:
    """Shows frames: redrawn in place on a terminal, plain lines elsewhere.

    Args:
        out: Where to write (normally ``sys.stdout``).
        live: Redraw in place with ANSI escapes (``out`` is a terminal).
        plain_every: Seconds between two plain lines when not ``live``.
    """

    def __init__(self, out: TextIO, *, live: bool, plain_every: float) -> None:
        self.out = out
        self.live = live
        self.plain_every = plain_every
        self._drawn = 0
        self._last_plain: float | None = None
        encoding = (getattr(out, "encoding", None) or "ascii").lower()
        self.unicode = "utf" in encoding

    def show(self, snap: Snapshot, *, final: bool = False) -> None:
        """Draw ``snap``; when not live, only every ``plain_every`` seconds
        (and always when ``final``)."""
        if not self.live:
            due = self._last_plain is None or snap.elapsed - self._last_plain >= self.plain_every
            if due or final:
                self._last_plain = snap.elapsed
                self.out.write(plain_line(snap) + "\n")
                self.out.flush()
            return
        width = max(20, shutil.get_terminal_size((100, 40)).columns - 1)
        lines = [line[:width] for line in frame_lines(snap, unicode=self.unicode)]
        up = f"\x1b[{self._drawn}F" if self._drawn else _HIDE_CURSOR
        body = "".join(f"{_CLEAR_LINE}{line}\n" for line in lines)
        self.out.write(up + body + _CLEAR_BELOW)
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        """Leave the last frame on screen and give the cursor back."""
        if self.live:
            self.out.write(_SHOW_CURSOR)
            self.out.flush()
