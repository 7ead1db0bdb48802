"""Figures of the reliability suites, shown at the end of the pytest run.

A suite calls :func:`report` with what it ran and checked; the figures are
printed at once (visible with ``pytest -s``) and collected by a plugin
registered on first use, whose ``pytest_terminal_summary`` prints them in
the normal output too, so CI logs show them.  No ``conftest.py`` edit.
"""

from __future__ import annotations

from typing import Any

import pytest


class _FiguresPlugin:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("reliability figures")
            for line in self.lines:
                terminalreporter.write_line(line)


def report(config: pytest.Config, suite: str, **figures: object) -> str:
    """Record ``figures`` of ``suite`` for the summary; return the line."""
    plugin = config.pluginmanager.get_plugin("neoleasepool-figures")
    if plugin is None:
        plugin = _FiguresPlugin()
        config.pluginmanager.register(plugin, "neoleasepool-figures")
    line = f"{suite}: " + " ".join(f"{key}={value}" for key, value in figures.items())
    plugin.lines.append(line)
    print(line)
    return line
