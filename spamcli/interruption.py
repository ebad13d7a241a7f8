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
# How many deferred() blocks the main thread is in: the handler then only
# records the request.
_deferring = 0


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
        if not _deferring:
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


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold an interruption that arrives inside the block until it ends,
    then raise it. For a library call that must not be cut in half: a
    KeyboardInterrupt raised inside zipfile.ZipFile's constructor (np.savez
    writing a model's arrays) left a half-made object, whose __del__ later
    printed a traceback ("'ZipFile' object has no attribute '_writing'")
    under train's "Aborted!" (tests/test_no_lost_work.py, once in CI). The
    model stayed whole either way; the block only ever writes a file of the
    staging folder, a second at most."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    check()
