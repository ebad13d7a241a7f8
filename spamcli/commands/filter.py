"""spamcli filter: one message through, marked, for mail delivery agents."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    EXIT_TEMPFAIL,
    checked_by,
    cutoff_options,
    exit_status_option,
    hint_if_terminal,
    limit_blas_threads,
    model_option,
    one_line,
    open_scorer,
    resolve_cutoffs,
    warn_if_possible,
)


@click.command(name="filter")
@model_option
@cutoff_options
@click.option(
    "--header-prefix",
    default="X-Spam-",
    show_default=True,
    callback=checked_by("spamcli.filtering", "check_header_prefix"),
    help="Prefix of the three header fields added (PREFIX Flag, Score and Status).",
)
@click.option(
    "--subject-tag",
    metavar="TEXT",
    default=None,
    callback=checked_by("spamcli.filtering", "check_subject_tag"),
    help="Put TEXT (e.g. '[SPAM]') before the Subject of spam, unless it is there already.",
)
@click.option(
    "--tempfail",
    is_flag=True,
    help=f"Exit {EXIT_TEMPFAIL} (EX_TEMPFAIL) when the message could not be "
    "classified, so that the delivery agent tries again later.",
)
@exit_status_option
def filter_command(
    model_dir: Path,
    threshold: float | None,
    ham_cutoff: float | None,
    header_prefix: str,
    subject_tag: str | None,
    tempfail: bool,
    exit_status: bool,
) -> None:
    """Pass one message from stdin to stdout, marked with its verdict.

    Adds the header fields X-Spam-Flag (YES for spam, else NO), X-Spam-Score
    and X-Spam-Status at the top of the header block, after removing any
    fields of those names already there, and changes nothing else. When the
    message cannot be classified (no model, a broken model, any error), it
    goes to stdout unchanged, one line on stderr says why, and the exit
    status is 0 (75 with --tempfail, 3 with --exit-status).
    """
    from spamcli.config import EXIT_ERROR

    limit_blas_threads()
    if threshold is not None and ham_cutoff is not None and ham_cutoff > threshold:
        raise click.UsageError(
            f"the ham cut-off {ham_cutoff} must not be above the spam cut-off {threshold}"
        )
    failure_status = EXIT_TEMPFAIL if tempfail else EXIT_ERROR if exit_status else 0
    # Nothing was passed on: a delivery agent must not take empty output for the mail.
    undelivered_status = EXIT_TEMPFAIL if tempfail else EXIT_ERROR if exit_status else 1
    if sys.stdin is None:  # descriptor 0 closed (`<&-`): there is no message to pass on
        warn_if_possible("filter: cannot read the message: standard input is closed")
        sys.exit(undelivered_status)
    from spamcli.streams import read_stream, write_stream

    hint_if_terminal(getattr(sys.stdin, "buffer", None))
    try:
        # To the end, whatever the pipe's mode: a non-blocking stdin gave
        # only what it held at the first read (128 KiB of a 3 MB message).
        raw = read_stream(sys.stdin.buffer)
    except (OSError, MemoryError, AttributeError, ValueError) as error:
        warn_if_possible(f"filter: cannot read the message: {one_line(error)}")
        sys.exit(undelivered_status)
    try:
        from spamcli.scoring import exit_status as verdict_exit_status

        filtered = _filter_one(raw, model_dir, threshold, ham_cutoff, header_prefix, subject_tag)
        output = filtered.pieces
        status = verdict_exit_status([filtered.label]) if exit_status else 0
    # The message must go through, whatever went wrong in classifying it.
    except Exception as error:
        warn_if_possible(f"filter: the message passes unmarked: {one_line(error)}")
        output, status = (raw,), failure_status
    try:
        # Every byte or an error: a raw stdout (PYTHONUNBUFFERED=1) took
        # 1,024,000 bytes of 3 MB under `ulimit -f 1000`, and said so only
        # in a count nobody looked at.
        write_stream(sys.stdout.buffer, output)
    except (OSError, AttributeError, ValueError) as error:
        _discard_stdout()
        warn_if_possible(f"filter: cannot write the message: {one_line(error)}")
        sys.exit(undelivered_status)
    sys.exit(status)


def _filter_one(
    raw: bytes,
    model_dir: Path,
    threshold: float | None,
    ham_cutoff: float | None,
    header_prefix: str,
    subject_tag: str | None,
) -> Any:
    from spamcli.filtering import filter_message

    scorer = open_scorer(model_dir)
    cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
    return filter_message(raw, scorer, cutoffs, header_prefix, subject_tag)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
