"""The command line: ``python -m neoleasepool demo | bench | info``.

* ``demo`` runs :mod:`neoleasepool._demo`: the library seen from a plain
  synchronous script, drawn live on the terminal;
* ``bench`` runs the benchmark suite of a source checkout (``benchmarks/``
  is not installed with the package);
* ``info`` prints what this installation can do: version, Python,
  backends, CPU count and default sizes.

Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["find_benchmarks", "main"]

#: Baselines the benchmarks compare against; ``make bench`` installs them.
BASELINES = ("leasepool", "neotasker")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seconds must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"--seconds must be at least 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be an integer, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be from 0 to 65535, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m neoleasepool``."""
    parser = argparse.ArgumentParser(
        prog="python -m neoleasepool",
        description="Leased executors, batching and supervision: demo, benchmarks, diagnostics.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="a live demo: adaptive pools, leases, a grinder fed from threads and async code",
        description="Run the live demo from a plain synchronous script's point of view. "
        "On a terminal the view is redrawn in place; otherwise plain status lines "
        "are printed. Ends on its own with a summary.",
    )
    demo.add_argument(
        "--seconds", type=_positive_seconds, default=20.0, metavar="N",
        help="how long the demo runs (default: 20)",
    )
    demo.add_argument(
        "--plain", action="store_true", help="print plain status lines even on a terminal"
    )
    demo.add_argument(
        "--serve", action="store_true",
        help="serve the live status page on 127.0.0.1 (its URL is printed first) and, "
        "after the demo's work, keep serving until Ctrl-C",
    )
    demo.add_argument(
        "--port", type=_port, default=0, metavar="N",
        help="the status page's port, with --serve (default: 0, a free port)",
    )
    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite of a source checkout and print the ratios",
        description="Run benchmarks/bench_*.py from the repository (found from the "
        "current directory or the package's location). For the leasepool and "
        "neotasker baselines side by side, run 'make bench'.",
    )
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.add_argument(
        "--only", nargs="+", metavar="NAME",
        help="run only these modules (manager, grinder, supervisor, supervised)",
    )
    commands.add_parser(
        "info", help="version, Python, backends, CPU count and default sizes",
        description="Print what this installation offers.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        if args.port and not args.serve:
            parser.error("demo: --port needs --serve")
        live = sys.stdout.isatty() and not args.plain and os.environ.get("TERM") != "dumb"
        return run_demo(args.seconds, sys.stdout, live=live, serve=args.serve, port=args.port)
    if args.command == "bench":
        return _bench(args.json, args.only)
    print(info_text())
    return 0


# ---------------------------------------------------------------- bench


def find_benchmarks(start: Path | None = None) -> Path | None:
    """The repository root holding ``benchmarks/``, or ``None``.

    Looks in ``start`` (default: the current directory) and its parents,
    then next to the package (an editable install from a checkout).
    """
    here = (start or Path.cwd()).resolve()
    package_root = Path(__file__).resolve().parents[2]
    for candidate in (here, *here.parents, package_root):
        if (candidate / "benchmarks" / "__main__.py").is_file():
            return candidate
    return None


def _bench(as_json: bool, only: list[str] | None) -> int:
    root = find_benchmarks()
    if root is None:
        print(
            "python -m neoleasepool bench: no benchmarks/ directory here. The benchmark "
            "suite lives in the source repository, not in the installed package: run this "
            "from a checkout (or use 'make bench' there).",
            file=sys.stderr,
        )
        return 2
    known = sorted(p.stem.removeprefix("bench_") for p in (root / "benchmarks").glob("bench_*.py"))
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        print(
            f"python -m neoleasepool bench: no benchmark module(s) {', '.join(unknown)}; "
            f"choose from {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    missing = [name for name in BASELINES if importlib.util.find_spec(name) is None]
    if missing and not as_json:
        print(
            f"note: baseline(s) {', '.join(missing)} not installed in this environment; their "
            "rows show 'missing' and no ratio. 'make bench' installs them into .venv-bench.",
            flush=True,
        )
    command = [sys.executable, "-m", "benchmarks"]
    if as_json:
        command.append("--json")
    if only:
        command += ["--only", *only]
    return subprocess.run(command, cwd=root, check=False).returncode


# ----------------------------------------------------------------- info


def _defaults(fn: Any) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY
    }


def info_text() -> str:
    """What ``info`` prints."""
    from .._version import __version__
    from ..backends import backend_availability
    from ..grinder import WorkGrinder
    from ..leasing import LeasedExecutorManager
    from ..supervision.pool import default_max_size

    lines = [
        f"neoleasepool {__version__}",
        f"Python       {platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.platform})",
        f"CPU count    {os.cpu_count()}",
        f"GIL          {_gil_line()}",
        "",
        "backends",
    ]
    backends = backend_availability()
    width = max(map(len, backends))
    for name, reason in backends.items():
        status = "available" if reason is None else "unavailable: " + reason
        lines.append(f"  {name:<{width}} {status}")
    manager = _defaults(LeasedExecutorManager.__init__)
    grinder = _defaults(WorkGrinder.__init__)
    lines += [
        "",
        "defaults",
        f"  task_supervisor pool     min_size 0, max_size {default_max_size()} "
        "(CPU count x 5)",
        "  LeasedExecutorManager    max_pools required; "
        + ", ".join(
            f"{k} {manager[k]}"
            for k in ("min_pools", "workers_per_pool", "units_per_pool", "check_interval",
                      "default_lease_seconds", "lease_grace_seconds")
        ),
        "  WorkGrinder              "
        + ", ".join(
            f"{k} {grinder[k]}"
            for k in ("batch_size_threshold", "max_wait_seconds", "lease_seconds", "chunk_size",
                      "item_timeout")
        ),
    ]
    return "\n".join(lines)


def _gil_line() -> str:
    from .._util.gil import free_threaded_build, gil_enabled

    if not free_threaded_build():
        return "enabled (a regular build: threads take turns running Python)"
    if gil_enabled():
        return (
            "enabled on a free-threaded build (PYTHON_GIL=1, or an extension "
            "module turned it back on)"
        )
    return "disabled (free-threaded: the thread backend runs Python on every core)"
