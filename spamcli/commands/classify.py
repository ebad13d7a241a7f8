"""spamcli predict and sort: verdicts for messages on disk."""

from __future__ import annotations

import collections
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    checked_by,
    cutoff_options,
    exit_status_option,
    explain_options,
    fail,
    format_option,
    limit_blas_threads,
    model_option,
    open_scorer,
    read_messages,
    resolve_cutoffs,
    shown_name,
    warn,
)
from spamcli.errors import SpamcliError


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@model_option
@format_option
@cutoff_options
@exit_status_option
@explain_options
def predict(
    paths: tuple[Path, ...],
    model_dir: Path,
    output_format: str,
    threshold: float | None,
    ham_cutoff: float | None,
    exit_status: bool,
    explain: bool,
    explain_top: int | None,
) -> None:
    """Classify messages: one line per message on stdout.

    PATHS are message files, folders (each file in them), mbox files,
    Maildirs or .tar/.tar.gz/.tar.bz2 archives; '-' or no PATH reads one
    message from stdin. Text output is 'LABEL SCORE SOURCE', LABEL being
    ham, unsure or spam; a message from an mbox or Maildir adds its 1-based
    INDEX in the mailbox and its MESSAGE-ID ('-' when it has none), two
    fields without spaces: 'LABEL SCORE SOURCE INDEX MESSAGE-ID'. JSON
    output is one object per line with source, label, score (the spam
    probability), index (null for a message file) and message_id (or null).
    A path that cannot be read is reported on stderr, the others are still
    classified, and the exit status is 1 (3 with --exit-status).

    With --explain, each prediction is followed by the n-grams that raised
    and lowered its score most, one a line: four spaces, the effect (score
    minus the score without that n-gram) and the n-gram in double quotes.
    """
    if explain_top is not None and not explain:
        raise click.UsageError("--explain-top needs --explain")
    limit_blas_threads()
    from spamcli.corpus import ReadFailure
    from spamcli.scoring import classify
    from spamcli.scoring import exit_status as verdict_exit_status

    try:
        scorer = open_scorer(model_dir)
    except SpamcliError as error:
        fail(error, verdict_exit_status((), failed=True) if exit_status else None)
    cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
    failures = 0
    labels: set[str] = set()
    not_mail: collections.deque[str | None] = collections.deque()
    messages = _noting_not_mail(read_messages(paths or (Path("-"),)), not_mail)
    if explain:
        from spamcli.explaining import DEFAULT_TOP, explain_messages

        top = DEFAULT_TOP if explain_top is None else explain_top
        items: Iterator[Any] = explain_messages(scorer, messages, cutoffs, top)
    else:
        items = classify(scorer, messages, cutoffs)
    try:
        for item in items:
            if isinstance(item, ReadFailure):
                if item.skipped:
                    # A FIFO or device found in a folder: no message, no error.
                    warn(f"skipped {shown_name(item.source)}: {item.reason}")
                    continue
                failures += 1
                warn(f"{shown_name(item.source)}: {item.reason}")
                continue
            labels.add(item.label)
            # classify gives one result per message, in order.
            reason = not_mail.popleft()
            if reason is not None:
                warn(f"{item.source}: {NOT_MAIL} ({reason}); its verdict means little")
            if output_format == "json":
                record = {
                    "source": item.source,
                    "label": item.label,
                    "score": item.score,
                    "index": item.index,
                    "message_id": item.message_id,
                }
                if reason is not None:
                    record["warning"] = NOT_MAIL
                if explain:
                    record["explanation"] = _explanation_records(item.explanation)
                echo_data(json.dumps(record))
            elif item.index is None:
                echo_data(f"{item.label} {item.score:.6f} {shown_name(item.source)}")
            else:
                identifier = _message_id_field(item.message_id)
                echo_data(
                    f"{item.label} {item.score:.6f} {shown_name(item.source)} "
                    f"{item.index} {identifier}"
                )
            if explain and output_format != "json":
                for line in _explanation_lines(item.explanation):
                    echo_data(line)
    except SpamcliError as error:
        # A model that loaded but cannot score: weights that are no numbers.
        fail(error, verdict_exit_status((), failed=True) if exit_status else None)
    if exit_status:
        sys.exit(verdict_exit_status(labels, failed=bool(failures)))
    if failures:
        sys.exit(1)


def echo_data(line: str) -> None:
    """One line of output, as click.echo writes it, escape sequences always
    stripped: a line of data carries no colour (names and Message-IDs are
    the message's, and a terminal must not act on them), and click then
    does not ask whether stdout is a terminal for every line (1.6 against
    3 to 4.4 us a line; 6,046 lines for the SpamAssassin folder)."""
    click.echo(line, color=False)


# The warning JSON output carries for input that is no mail (mail.looks_like_mail).
NOT_MAIL = "not a mail message"


def _noting_not_mail(items: Iterator[Any], reasons: collections.deque[str | None]) -> Iterator[Any]:
    """The messages, unchanged; for each, why it is not mail (or None) is
    appended to REASONS, in the order classify gives their results back."""
    from spamcli.corpus import ReadFailure
    from spamcli.mail import looks_like_mail

    for item in items:
        if not isinstance(item, ReadFailure):
            reasons.append(looks_like_mail(item.raw))
        yield item


def _explanation_lines(explanation: Any) -> Iterator[str]:
    """'    +0.012345  "click here"': indented, so a line of its own is a
    prediction; n-grams that share a bucket are quoted together."""
    for effect in explanation.effects:
        yield f'    {effect.effect:+.6f}  "{effect.token}"'


def _explanation_records(explanation: Any) -> list[dict[str, Any]]:
    return [{"token": effect.token, "effect": effect.effect} for effect in explanation.effects]


@click.command(name="sort")
@click.argument("maildir", type=click.Path(file_okay=False, path_type=Path))
@model_option
@click.option(
    "--spam-folder",
    metavar=".NAME",
    default=".Junk",
    show_default=True,
    callback=checked_by("spamcli.sorting", "check_folder_name"),
    help="Maildir++ subfolder of MAILDIR that spam is moved to; made if missing.",
)
@click.option(
    "--unsure-folder",
    metavar=".NAME",
    default=None,
    callback=checked_by("spamcli.sorting", "check_folder_name"),
    help="Maildir++ subfolder for unsure mail, e.g. .Unsure.  [default: unsure mail stays]",
)
@click.option("--dry-run", is_flag=True, help="Say what would be moved; move nothing.")
@cutoff_options
def sort_command(
    maildir: Path,
    model_dir: Path,
    spam_folder: str,
    unsure_folder: str | None,
    dry_run: bool,
    threshold: float | None,
    ham_cutoff: float | None,
) -> None:
    """Move the spam in a Maildir into its spam folder.

    Every message in MAILDIR's new/ and cur/ is classified; spam goes to the
    same part (new/ or cur/) of the spam folder under the same file name,
    flags included, and unsure mail likewise to --unsure-folder if given.
    The Maildir's subfolders are never read. Messages are moved by renaming,
    never copied, and never over an existing file. One line per message
    moved: 'VERDICT SCORE FROM -> TO'; a summary on stderr. A message that
    cannot be read or moved (another mail program moved or changed it, or
    its name is taken in the spam folder) is left in place and reported on
    stderr, the others are still sorted, and the exit status is 1.
    """
    limit_blas_threads()
    from spamcli.sorting import Kept, Moved, Skipped, sort_maildir

    counts = {"moved": 0, "kept": 0, "skipped": 0}
    moved_to: dict[str, int] = {}
    try:
        scorer = open_scorer(model_dir)
        cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
        for event in sort_maildir(
            scorer, maildir, cutoffs, spam_folder, unsure_folder, dry_run=dry_run
        ):
            if isinstance(event, Moved):
                counts["moved"] += 1
                folder = event.destination_path.parent.parent.name
                moved_to[folder] = moved_to.get(folder, 0) + 1
                click.echo(
                    f"{event.label} {event.score:.6f} {shown_name(str(event.source_path))} -> "
                    f"{shown_name(str(event.destination_path))}"
                )
            elif isinstance(event, Kept):
                counts["kept"] += 1
            elif isinstance(event, Skipped):
                counts["skipped"] += 1
                warn(f"skipped {shown_name(str(event.source_path))}: {event.reason}")
    except SpamcliError as error:
        fail(error)
    verb = "would move" if dry_run else "moved"
    destinations = ", ".join(f"{count} to {folder}" for folder, count in sorted(moved_to.items()))
    total = sum(counts.values())
    warn(
        f"{total} message{'s' if total != 1 else ''}: {verb} {counts['moved']}"
        f"{f' ({destinations})' if destinations else ''}, left {counts['kept']}, "
        f"skipped {counts['skipped']}"
    )
    if counts["skipped"]:
        sys.exit(1)


def _message_id_field(message_id: str | None) -> str:
    """A Message-ID as one field of a text line: its <...> part, white space
    removed (a msg-id has none; only comments beside it may), '-' when absent."""
    if not message_id:
        return "-"
    bracketed = re.search(r"<[^<>]*>", message_id)
    return "".join((bracketed.group() if bracketed else message_id).split())
