"""TensorFlow's start-up log off, Keras' per-epoch lines only when asked for.

Imported by the commands that may load TensorFlow (train, learn), before
they do. Standard library only.

A `spamcli train` on this machine wrote 9 lines to stderr before its first
epoch: absl's "All log messages before absl::InitializeLog() is called are
written to STDERR" and the oneDNN and CPU-instruction notices, twice (once
for TensorFlow, once for Keras' import of it). TF_CPP_MIN_LOG_LEVEL=3
stops the CPU notice and anything logged later, but not the lines written
while the libraries load (see import_tensorflow). Without -v, the epochs
are a progress bar on a terminal (EpochProgress) and nothing elsewhere;
with -v, TensorFlow logs as it likes and Keras writes its line per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

# Keras' fit(verbose=...): one line per epoch, or nothing.
FIT_VERBOSE = 2
FIT_QUIET = 0


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow's and absl's start-up logging, unless VERBOSE.

    Call it before TensorFlow is first imported: the C++ log level is read
    once, when the library loads. A TF_CPP_MIN_LOG_LEVEL the user set is
    kept. absl's Python logger (TensorFlow's warnings about retracing and
    the like) is set to errors only, as is the "tensorflow" logger.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging
    except ImportError:  # no TensorFlow installed: nothing to silence
        return
    absl.logging.set_verbosity(absl.logging.ERROR)


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras now, quietly unless VERBOSE.

    TF_CPP_MIN_LOG_LEVEL=3 is not enough: with it, loading TensorFlow
    still wrote absl's "All log messages before absl::InitializeLog()" and
    the oneDNN notice, twice (TensorFlow 2.21 here), before its log level
    applies. They come from C++ while the libraries load, so stderr's file
    descriptor points at /dev/null for the import alone; an import that
    fails still raises its exception, which is reported after. (Setting
    TF_ENABLE_ONEDNN_OPTS=0 silenced them too, but changes the arithmetic.)
    Once imported, the later imports in the training code cost nothing.
    """
    quiet_tensorflow(verbose)
    with contextlib.nullcontext() if verbose else _stderr_descriptor_discarded():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_descriptor_discarded() -> Iterator[None]:
    """Descriptor 2 on /dev/null meanwhile, then back; as it was if it cannot be."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def fit_verbosity(verbose: bool) -> int:
    """Keras' verbose= for model.fit: its line per epoch only with -v."""
    return FIT_VERBOSE if verbose else FIT_QUIET


class EpochProgress:
    """A progress bar on stderr, one step per epoch, for training without -v.

    Drawn only when stderr is a terminal (a log file gets no bar); call it
    as Keras calls ``on_epoch_end(epoch, logs)``, e.g. from
    ``keras.callbacks.LambdaCallback(on_epoch_end=progress)``. The bar shows
    the epochs done of the most allowed (early stopping may end it sooner)
    and the latest validation loss.
    """

    def __init__(self, epochs: int, enabled: bool = True) -> None:
        self.epochs = epochs
        self.enabled = enabled and _is_terminal(sys.stderr)
        self._bar: Any = None
        self._validation_loss: float | None = None

    def __enter__(self) -> EpochProgress:
        return self

    def __call__(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            # Made at the first epoch's end, not before: the mail is read
            # first, with a counter of its own on the same line.
            import click

            self._bar = click.progressbar(
                length=self.epochs,
                label="training",
                file=sys.stderr,
                show_pos=True,
                show_percent=False,
                item_show_func=self._describe,
            )
            self._bar.__enter__()
        loss = (logs or {}).get("val_loss")
        self._validation_loss = float(loss) if isinstance(loss, int | float) else None
        self._bar.update(epoch + 1 - self._bar.pos, current_item=epoch)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
            self._bar = None

    def _describe(self, epoch: int | None) -> str | None:
        if epoch is None or self._validation_loss is None:
            return None
        return f"validation loss {self._validation_loss:.4f}"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False
