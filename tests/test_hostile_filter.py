"""Hostile and broken input through `spamcli filter`.

Every message of tests/hostile_catalogue.py passes through: exit status 0,
nothing on stderr, and stdout is the message with exactly the three verdict
fields added, its score in [0, 1] and the scorer's own; taking the three
lines out gives back the input byte for byte, the 50 MiB ones included. A
stdin that is closed cannot be passed through: one line on stderr, nothing
on stdout, and a failing exit status. A stdin from /dev/null is the empty
message, marked.

The built-in model scores here, as in tests/test_hostile.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_catalogue import BIG_MESSAGES, HOSTILE_MESSAGES, HostileMessage, hostile_message

from spamcli.cli import DEFAULT_MODEL_DIR, EXIT_TEMPFAIL, cli
from spamcli.config import EXIT_ERROR
from spamcli.filtering import remove_verdict_fields
from spamcli.scoring import Scorer

SPAMCLI = [sys.executable, "-m", "spamcli"]
PROCESS_TIMEOUT = 120
# The three fields, one after the other, with the message's line ending.
ADDED_FIELDS = re.compile(
    rb"X-Spam-Flag: (?P<flag>YES|NO)(?P<ending>\r?\n)"
    rb"X-Spam-Score: (?P<score>[01]\.\d{4})(?P=ending)"
    rb"X-Spam-Status: (?P<word>Yes|No|Unsure), score=(?P=score), spam_cutoff=[01]\.\d{4}, "
    rb"ham_cutoff=[01]\.\d{4}, model=default(?P=ending)"
)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(DEFAULT_MODEL_DIR)


def run_filter(
    *args: str, input: bytes | None = None, **kwargs: object
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*SPAMCLI, "filter", "-m", str(DEFAULT_MODEL_DIR), *args],
        input=input,
        capture_output=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        **kwargs,
    )


def assert_passed_through(output: bytes, raw: bytes, scorer: Scorer) -> None:
    """OUTPUT is RAW with exactly the three fields added, once, and nothing lost."""
    matches = list(ADDED_FIELDS.finditer(output))
    assert len(matches) == 1, output[:300]
    added = matches[0]
    before, after = output[: added.start()], output[added.end() :]
    # The same check as tests/test_filter.py's round trip on any bytes: the
    # output without the added lines is the input without our fields; and
    # no catalogue message carries fields of our names, so that is the input.
    assert before + after == remove_verdict_fields(raw) == raw
    assert len(output) == len(raw) + len(added[0])
    # The fields go first, after an envelope line and lines starting with white space.
    top_lines = re.findall(rb"[^\n]*\n", before)
    if top_lines and top_lines[0].startswith(b"From "):
        top_lines.pop(0)
    assert all(line.startswith((b" ", b"\t")) for line in top_lines)
    score = float(added["score"])
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(scorer.score_messages([raw])[0], abs=5e-5)
    label = scorer.cutoffs().label(score)
    assert added["flag"] == (b"YES" if label == "spam" else b"NO")
    assert added["word"] == {"spam": b"Yes", "ham": b"No", "unsure": b"Unsure"}[label]


def small_messages() -> list[object]:
    return [
        pytest.param(message, id=message.name)
        for message in HOSTILE_MESSAGES
        if message.name not in BIG_MESSAGES
    ]


@pytest.mark.parametrize("message", small_messages())
def test_hostile_filter_passes_the_message_through(message: HostileMessage, scorer: Scorer) -> None:
    raw = message.build()

    result = CliRunner().invoke(cli, ["filter", "-m", str(DEFAULT_MODEL_DIR)], input=raw)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert_passed_through(result.stdout_bytes, raw, scorer)


# In a process, through real pipes both ways: each takes under 1 s here.
@pytest.mark.parametrize("name", sorted(BIG_MESSAGES))
def test_hostile_filter_passes_a_big_message_through_whole(name: str, scorer: Scorer) -> None:
    raw = hostile_message(name).build()

    completed = run_filter(input=raw)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    assert_passed_through(completed.stdout, raw, scorer)


def test_hostile_filter_stdin_from_dev_null_is_the_empty_message(scorer: Scorer) -> None:
    completed = run_filter(stdin=subprocess.DEVNULL)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    assert_passed_through(completed.stdout, b"", scorer)


@pytest.mark.parametrize(
    ("flags", "status"),
    [([], 1), (["--tempfail"], EXIT_TEMPFAIL), (["--exit-status"], EXIT_ERROR)],
    ids=str,
)
def test_hostile_filter_closed_stdin_is_an_error(flags: list[str], status: int) -> None:
    # Nothing can be passed on, so a delivery agent must not take the empty
    # output for the mail: never exit status 0. preexec_fn closes the
    # child's descriptor 0 just before spamcli starts.
    completed = run_filter(*flags, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))

    assert completed.stdout == b""
    assert (
        completed.stderr == b"spamcli: filter: cannot read the message: standard input is closed\n"
    )
    assert completed.returncode == status
