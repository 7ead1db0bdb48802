"""What the parent and a worker process say to each other over their pipe.

Every message is one ``send_bytes`` frame whose first byte says its kind;
the rest, if any, is a pickle. The parent pickles a call on the thread
that submits it, so a call the worker cannot use fails its own future at
once and the manager thread only copies bytes. A result keeps its outcome
in a pickle of its own (after a header the parent can always read), so an
outcome the parent cannot unpickle fails that call only.

Parent to worker:
    ``CALL`` + pickle of ``(name, timeout, soft_timeout, fn, args, kwargs)``,
    or ``EXIT`` alone (finish and leave).
Worker to parent:
    ``READY`` alone (started, initializer done); ``INIT_FAILED`` + pickle
    of ``(error text, traceback text)``; ``RESULT`` + one byte of
    :data:`RETIRE_REASONS` (``0``: the worker stays) + pickle of
    ``(ok, value, traceback text or None)``.
"""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler
from typing import Any, NamedTuple

__all__ = [
    "CALL",
    "EXIT",
    "INIT_FAILED",
    "READY",
    "RESULT",
    "RETIRE_REASONS",
    "ChildConfig",
    "RemoteTraceback",
    "dump",
    "load",
]

CALL = b"C"
EXIT = b"X"
READY = b"R"
INIT_FAILED = b"I"
RESULT = b"D"

#: Why a worker retires after a call, by the byte that carries it (index 0:
#: it does not). The names are the keys of ``WorkerPool.stats()["restarts"]``.
RETIRE_REASONS = (None, "max_tasks", "max_memory", "max_age")


class ChildConfig(NamedTuple):
    """What a worker process needs to know, sent once when it starts.

    Attributes:
        initializer: Called first with ``initargs``, or ``None``.
        initargs: Arguments of ``initializer``.
        max_tasks: Retire after this many calls, or ``None``.
        max_memory: Retire after a call once the resident size exceeds this
            many bytes, or ``None``.
        max_age: Retire after a call once the worker is this many seconds
            old, or ``None``.
    """

    initializer: Any
    initargs: tuple[Any, ...]
    max_tasks: int | None
    max_memory: int | None
    max_age: float | None


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, set as
    that exception's ``__cause__`` in the parent so that it is printed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def dump(header: bytes, obj: object) -> memoryview:
    """``header`` followed by a pickle of ``obj``, in one buffer (no copy).

    Uses multiprocessing's pickler, as ``ProcessPoolExecutor`` does, so the
    objects it knows how to send (connections, sockets) work here too.

    Raises:
        Exception: Whatever pickling ``obj`` raises.
    """
    buffer = io.BytesIO()
    buffer.write(header)
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getbuffer()


def load(frame: bytes, skip: int = 1) -> Any:
    """Unpickle a frame after its first ``skip`` header bytes.

    Raises:
        Exception: Whatever unpickling raises.
    """
    return pickle.loads(memoryview(frame)[skip:])
