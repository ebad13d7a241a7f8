"""spamcli learn: corrections."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    check_model,
    fail,
    limit_blas_threads,
    model_option,
    read_messages,
    shown_name,
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
@click.option(
    "--force",
    is_flag=True,
    help="Learn input that does not look like mail (empty, binary, no header block) all the same.",
)
def learn(
    paths: tuple[Path, ...],
    as_spam: bool,
    as_ham: bool,
    model_dir: Path,
    forget: bool,
    force: bool,
) -> None:
    """Correct the model: learn messages as spam or ham, in milliseconds.

    PATHS are message files, folders, mbox files, Maildirs or archives, as
    for predict; '-' or no PATH reads one message from stdin. Exactly one of
    --spam and --ham gives their label. Each message is one step of the
    optimizer the model was trained with, on that message, written to the
    model folder at once; words the model has never seen are learned too.
    Learning a message again with the same label changes nothing; with the
    other label, it is relabelled. --forget takes a learned message back to
    the score it had before it was first learned (with either label flag).
    The folder keeps the learned messages for train --resume. One line per
    message on stdout: 'OUTCOME LABEL SCORE_BEFORE SCORE_AFTER SOURCE'
    (SCORE_AFTER is '-' when nothing was written).

    Input that does not look like mail (empty, binary, no header block) is
    refused, unless --force. The built-in model is read-only: learning into
    it first copies it to the user model (~/.local/share/spamcli/model),
    which then learns, and is used from then on.
    """
    if as_spam == as_ham and not (forget and not as_spam):
        raise click.UsageError("give the label: --spam or --ham (one of them)")
    # Each step's products are of one row, as a filter's: 50 messages
    # learned in 0.28-0.30 s with one BLAS thread, 0.32-0.40 s without.
    limit_blas_threads()
    paths = paths or (Path("-"),)
    if [str(path) for path in paths].count("-") > 1:
        raise click.UsageError("stdin ('-') holds one message; give it once")
    from spamcli import interruption
    from spamcli.locations import is_builtin_model, writable_model

    try:
        check_model(model_dir)
        if forget and is_builtin_model(model_dir):
            warn("the built-in model has learned no messages; there is nothing to forget")
            return
        writable = writable_model(model_dir)
    except SpamcliError as error:
        fail(error)
    if writable.copied_from is not None:
        warn(
            f"the built-in model is read-only: copied it to {writable.path}, "
            "the user model, which learns these messages and is used from now on"
        )
    model_dir = writable.path
    from spamcli.learning import learn as learn_messages

    messages = read_messages(paths, whole=True)
    if not (force or forget):
        messages = _refusing_not_mail(messages)
    try:
        with interruption.interruptible():
            report = learn_messages(
                model_dir,
                spam=messages if as_spam else (),
                ham=messages if not as_spam else (),
                forget=forget,
            )
    except SpamcliError as error:
        fail(error)
    for failure in report.failures:
        warn(f"{shown_name(failure.source)}: {failure.reason}")
    for correction in report.corrections:
        after = "-" if correction.score_after is None else f"{correction.score_after:.6f}"
        click.echo(
            f"{correction.outcome.replace(' ', '-')} {correction.label} "
            f"{correction.score_before:.6f} {after} {shown_name(correction.source)}"
        )
    summary = ", ".join(f"{count} {outcome}" for outcome, count in report.outcomes.items())
    if report.changed:
        side = "" if report.all_on_correct_side else " (not every message reached its side)"
        warn(
            f"{summary}; {model_dir} has learned {report.learned_spam} spam and "
            f"{report.learned_ham} ham; {report.steps} steps{side}, "
            f"{report.seconds * 1000:.0f} ms"
        )
    else:
        warn(f"{summary}; {model_dir} unchanged")
    if report.failures:
        sys.exit(1)


def _refusing_not_mail(messages: Iterator[Any]) -> Iterator[Any]:
    """The messages, with each one that does not look like mail
    (mail.looks_like_mail) turned into a read failure: learning it would
    teach the model about something else. Done here rather than in the
    learning core, which is being rewritten."""
    from spamcli.corpus import ReadFailure
    from spamcli.mail import looks_like_mail

    for item in messages:
        if not isinstance(item, ReadFailure):
            reason = looks_like_mail(item.raw)
            if reason is not None:
                yield ReadFailure(
                    item.source, f"not a mail message ({reason}); --force learns it all the same"
                )
                continue
        yield item
