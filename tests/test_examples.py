"""Every script in ``examples/`` runs to completion and prints something.

The examples are collected when the tests are, so a new example is tested
without touching this file.  Each runs in a fresh interpreter from the
repository root, the way the examples' README tells users to run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.py"))
EXAMPLE_TIMEOUT_SECONDS = 60


def test_examples_directory_has_examples() -> None:
    assert EXAMPLES, f"no examples found in {REPO_ROOT / 'examples'}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs_cleanly_and_prints_output(example: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(example.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{example.name} exited with {completed.returncode}\n"
        f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    )
    assert completed.stdout.strip(), f"{example.name} printed nothing"
