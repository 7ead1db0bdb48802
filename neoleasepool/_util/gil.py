"""Whether this interpreter runs Python threads in parallel.

A free-threaded CPython (3.13t, 3.14t; ``python -VV`` says "free-threading
build") runs threads without the GIL unless something turned it back on
(``PYTHON_GIL=1``, or importing an extension module not marked safe for
it). There the thread backend runs CPU-bound Python on every core, without
pickling anything (``doc/free-threading.md``).
"""

from __future__ import annotations

import sys
import sysconfig

__all__ = ["free_threaded_build", "gil_enabled"]


def free_threaded_build() -> bool:
    """Whether this CPython was built with ``--disable-gil``."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is on now (always, on a regular build)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())
