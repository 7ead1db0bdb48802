"""See it running: Prometheus metrics, the status page and trace context.

A plain sync script with a supervised thread grinder. It prints a few of
the supervisor's Prometheus metrics (``task_supervisor.metrics_text()``),
starts the status page (``task_supervisor.serve_status()``) and reads its
``/healthz``, ``/status.json`` and ``/metrics`` the way a browser or a
Prometheus scraper would, then shows that a context variable set by the
caller (as a tracing library sets its current span) is seen by the work
the grinder runs on its threads.

Run from the repository root::

    python examples/15_observability.py

Keep it running with ``--serve`` and open the printed URL in a browser.
"""

from __future__ import annotations

import contextvars
import json
import sys
import urllib.request

from neoleasepool import task_supervisor

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="-")


def resize(size: int) -> str:
    """Some work; it logs the request it belongs to."""
    if size < 0:
        raise ValueError("a size cannot be negative")
    return f"resized to {size} for request {REQUEST_ID.get()}"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def main() -> None:
    task_supervisor.start()
    try:
        pool = task_supervisor.create_lease_manager("images", max_pools=2)
        grinder = task_supervisor.create_work_grinder("resize", pool, max_wait_seconds=0.01)
        for size in range(200):
            grinder.submit(resize, size)
        try:
            grinder.submit(resize, -1)
        except ValueError:
            pass

        print("-- a few lines of task_supervisor.metrics_text():")
        for line in task_supervisor.metrics_text().splitlines():
            if line.startswith(("neoleasepool_grinder_items_total", "neoleasepool_manager_pools{")):
                print("  ", line)

        url = task_supervisor.serve_status()
        print(f"-- status page: {url}")
        print("   /healthz:", fetch(url + "healthz").decode().strip())
        status = json.loads(fetch(url + "status.json"))
        print("   /status.json has:", ", ".join(sorted(status)))
        scraped = fetch(url + "metrics").decode()
        print("   /metrics lines:", len(scraped.splitlines()))
        print("   last failure:", grinder.recent_failures()[-1]["message"])

        REQUEST_ID.set("req-42")
        print("-- context follows the work:", grinder.submit(resize, 640))

        if "--serve" in sys.argv:
            print("serving until Ctrl-C ...")
            task_supervisor.block()
    finally:
        task_supervisor.stop()


if __name__ == "__main__":
    main()
