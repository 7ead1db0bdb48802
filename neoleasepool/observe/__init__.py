"""What operators see: metrics and the status page (layer 5).

* :mod:`.reading`: one reading of a supervisor and its parts;
* :mod:`.model` and :mod:`.families`: the metrics of a reading;
* :mod:`.prometheus`: Prometheus' text format;
* :mod:`.standalone`: the same for managers and grinders run without a
  supervisor (:func:`metrics_text_of`);
* :mod:`.server`, :mod:`.status`, :mod:`.history`, :mod:`.page`: the status
  page, served from the supervisor's own loop;
* :mod:`.otel`: the OpenTelemetry bridge (the ``neoleasepool[otel]`` extra);
* :mod:`.observer`: what the supervisor holds, plugged into it by
  :func:`install` (the package root calls it on import).
"""

from __future__ import annotations

from ..supervision.observer import set_observer_factory
from .observer import SupervisorObserver
from .standalone import metrics_text_of

__all__ = ["SupervisorObserver", "install", "metrics_text_of"]


def install() -> None:
    """Make supervisors use :class:`SupervisorObserver`."""
    set_observer_factory(SupervisorObserver)
