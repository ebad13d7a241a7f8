"""spamcli learn: corrections."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spamcli.commands.options import (
    fail,
    model_option,
    read_messages,
    warn,
)
from spamcli.errors import SpamcliError


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--spam", "as_spam", is_flag=True, help="Learn the messages as spam.")
@click.option("--ham", "as_ham", is_flag=True, help="Learn the messages as ham.")
@model_option
@click.option(
    "--forget",
    is_flag=True,
    help="Forget the messages instead: undo an earlier learn of them.",
)
def learn(
    paths: tuple[Path, ...], as_spam: bool, as_ham: bool, model_dir: Path, forget: bool
) -> None:
    """Correct the model: learn messages as spam or ham, in seconds, without retraining.

    PATHS are message files, folders, mbox files, Maildirs or archives, as
    for predict; '-' or no PATH reads one message from stdin. Exactly one of
    --spam and --ham gives their label. The model folder keeps the learned
    messages (see train --resume) and the trained weights; each learn or
    --forget recomputes the weights from those, so learning a message twice
    changes nothing and forgetting every learned message gives back the
    trained model. One line per message on stdout: 'OUTCOME LABEL
    SCORE_BEFORE SCORE_AFTER SOURCE'.
    """
    from spamcli import interruption
    from spamcli.learning import learn as learn_messages

    if as_spam == as_ham:
        raise click.UsageError("give the label: --spam or --ham (one of them)")
    paths = paths or (Path("-"),)
    if [str(path) for path in paths].count("-") > 1:
        raise click.UsageError("stdin ('-') holds one message; give it once")
    messages = read_messages(paths, whole=True)
    try:
        with interruption.interruptible():
            report = learn_messages(
                model_dir,
                spam=messages if as_spam else (),
                ham=messages if as_ham else (),
                forget=forget,
            )
    except SpamcliError as error:
        fail(error)
    for failure in report.failures:
        warn(f"{failure.source}: {failure.reason}")
    for correction in report.corrections:
        after = "-" if correction.score_after is None else f"{correction.score_after:.6f}"
        click.echo(
            f"{correction.outcome.replace(' ', '-')} {correction.label} "
            f"{correction.score_before:.6f} {after} {correction.source}"
        )
    summary = ", ".join(f"{count} {outcome}" for outcome, count in report.outcomes.items())
    if report.changed:
        side = "" if report.all_on_correct_side else " (not every message reached its side)"
        warn(
            f"{summary}; {model_dir} has learned {report.learned_spam} spam and "
            f"{report.learned_ham} ham; {report.steps} steps{side}, {report.seconds:.1f} s"
        )
    else:
        warn(f"{summary}; {model_dir} unchanged")
    if report.failures:
        sys.exit(1)
