"""Ctrl-C and SIGTERM during long work (train, learn), made reliable.

A Python signal handler raises its exception wherever the main thread is
at the time. Inside TensorFlow that can be C++ calling back into Python,
which clears the exception: a SIGTERM landing in ``TensorShape.__len__``,
called from ``TFE_Py_FastPathExecute`` while Keras opened the next epoch's
dataset iterator, vanished, and the training ran on and replaced the model
(2 of 58 signals sent at epoch 3 here). So the handler also records the request, and the long
steps call ``check`` at safe points: after each training batch and each
learning step, and just before a new model folder is put in place.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested = False


def check() -> None:
    """Raise KeyboardInterrupt if an interruption was requested. Only one
    TensorFlow swallowed gets here: any other has already ended the work."""
    if _requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible(signals: tuple[signal.Signals, ...] = SIGNALS) -> Iterator[None]:
    """Turn SIGINT and SIGTERM (or SIGNALS) into KeyboardInterrupt, recorded for ``check``.

    Python's default for SIGTERM ends the process on the spot, leaving the
    half-written temporary model folder beside the model; an exception lets
    the model folder's writer remove it. Either way the previous model stays
    in place (see artifacts.write_model_dir).
    """
    global _requested

    def interrupt(signal_number: int, frame: object) -> None:
        global _requested
        _requested = True
        raise KeyboardInterrupt

    try:
        previous = {number: signal.signal(number, interrupt) for number in signals}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _requested = False
