"""Run every ``benchmarks/bench_*.py`` module and print a table of ratios.

Each module defines ``run(reporter: Reporter) -> None``.  Usage::

    python -m benchmarks [--json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ._harness import Reporter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--json", action="store_true", help="print JSON at the end")
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only these modules (e.g. manager)"
    )
    args = parser.parse_args(argv)
    import benchmarks

    names = sorted(
        m.name
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only]
    reporter = Reporter(verbose=not args.json)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if not args.json:
            print(f"== {name.removeprefix('bench_')} ==", flush=True)
        module.run(reporter)
    if args.json:
        print(reporter.to_json())
    missed = [r.name for r in reporter.rows if r.meets_target is False]
    if missed and not args.json:
        print(f"\n{len(missed)} row(s) missed their target: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
