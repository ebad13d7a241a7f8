"""The command line: parse, call one core function, render.

Results go to stdout, everything else (progress, warnings, errors) to
stderr, so a script or mail filter reading stdout never sees anything but
data. Exit status: 0 success, 1 an error (any input that failed), 2 a usage
error. TensorFlow is imported only by ``train`` and ``learn``, inside the commands, so
``--help``, ``predict`` and ``evaluate`` start fast.
"""

from __future__ import annotations

import click

from spamcli import __version__
from spamcli.commands.classify import predict, sort_command
from spamcli.commands.evaluate import evaluate, info
from spamcli.commands.filter import filter_command
from spamcli.commands.learn import learn
from spamcli.commands.options import DEFAULT_MODEL_DIR, EXIT_TEMPFAIL
from spamcli.commands.train import corpus, index_vocabulary, train

__all__ = ["DEFAULT_MODEL_DIR", "EXIT_TEMPFAIL", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spamcli")
def cli() -> None:
    """A spam filter for email: train a model on your own labelled mail, then
    classify new mail from a shell, a script, or a mail filter."""


for command in (
    train,
    predict,
    evaluate,
    info,
    filter_command,
    learn,
    sort_command,
    index_vocabulary,
    corpus,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="spamcli")
