"""The command line: parse, call one core function, render.

Results go to stdout, everything else (progress, warnings, errors) to
stderr, so a script or mail filter reading stdout never sees anything but
data. Exit status: 0 success, 1 an error (any input that failed), 2 a usage
error. TensorFlow is imported only by ``train`` and ``learn``, inside the commands, so
``--help``, ``predict`` and ``evaluate`` start fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from spamcli import __version__
from spamcli.commands.options import EXIT_TEMPFAIL, SpamcliGroup, point_stdout_at_devnull

# DEFAULT_MODEL_DIR, the built-in model's folder, is here too (__getattr__).
__all__ = ["EXIT_TEMPFAIL", "cli", "main"]


def __getattr__(name: str) -> Any:
    # The built-in model's folder, looked up only when asked for (see
    # spamcli.locations.builtin_model_dir).
    if name == "DEFAULT_MODEL_DIR":
        from spamcli.locations import builtin_model_dir

        return builtin_model_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Each command's module, imported only when the command runs (or --help
# lists them all): importing all eleven took 9 ms of a one-message
# `predict`, an eighth of its start.
COMMANDS = {
    "train": ("spamcli.commands.train", "train"),
    "predict": ("spamcli.commands.classify", "predict"),
    "evaluate": ("spamcli.commands.evaluate", "evaluate"),
    "info": ("spamcli.commands.evaluate", "info"),
    "filter": ("spamcli.commands.filter", "filter_command"),
    "learn": ("spamcli.commands.learn", "learn"),
    "sort": ("spamcli.commands.classify", "sort_command"),
    "corpus": ("spamcli.commands.train", "corpus"),
    "check": ("spamcli.commands.check", "check"),
    "serve": ("spamcli.commands.serve", "serve_command"),
    "export": ("spamcli.commands.export", "export_command"),
}


@click.group(
    cls=SpamcliGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="spamcli")
def cli() -> None:
    """A spam filter for email: train a model on your own labelled mail, then
    classify new mail from a shell, a script, or a mail filter."""


def main() -> None:
    """The console script. A reader of stdout that goes away (`| head`) ends
    spamcli quietly, as it ends other Unix tools: click stops the command
    at the failed write with status 1, and a write that fails only at the
    final flush does the same here instead of printing a traceback."""
    try:
        cli(prog_name="spamcli")
    except SystemExit as exit_request:
        status = exit_request.code
    else:
        status = 0
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        point_stdout_at_devnull()
        status = 1
    sys.exit(status)
