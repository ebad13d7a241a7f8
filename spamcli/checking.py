"""`spamcli check`: is this set-up able to filter mail? Each step as data.

A mail filter that cannot load its model passes mail through unmarked (it
must never lose a message), so a broken set-up is easy to miss: a spam
folder that stays empty looks like a quiet week. The check goes through what
`spamcli filter` does for a message, one step at a time, and says which
step fails: the model folder is found, it loads, it scores a test message,
its cut-offs make sense, and scoring did not need TensorFlow.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from spamcli.errors import SpamcliError
from spamcli.locations import ModelLocation, check_model_dir

# A made-up message in the shape of the spam the built-in model was trained
# on; it only has to be scored, whatever the verdict.
TEST_MESSAGE = (
    b"From: Prize Desk <desk@winners.example.com>\n"
    b"To: you@example.org\n"
    b"Subject: You have WON a cash prize!!!\n"
    b"Date: Mon, 2 Sep 2024 03:00:00 +0000\n"
    b"Message-ID: <check-1@winners.example.com>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=us-ascii\n"
    b"\n"
    b"Dear winner, claim your cash prize of $1,000,000 now! Click here, act today.\n"
)


@dataclass(frozen=True)
class Check:
    """One step of the check: its name, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str


def check_setup(location: ModelLocation) -> list[Check]:
    """Every step of the check, in order; the steps after a failed one that
    need it are left out. The set-up is usable when every step passed."""
    from spamcli import extras

    checks: list[Check] = []
    try:
        check_model_dir(location)
    except SpamcliError as error:
        return [Check("model", False, str(error))]
    checks.append(Check("model", True, f"{location.path}: {location.reason()}"))

    tensorflow_before = "tensorflow" in sys.modules
    from spamcli.scoring import Scorer

    try:
        scorer = Scorer(location.path)
    except SpamcliError as error:
        checks.append(Check("loads", False, str(error)))
        return checks
    checks.append(
        Check(
            "loads",
            True,
            f"format version {scorer.metadata.get('format_version')}, "
            f"headers {scorer.header_policy}",
        )
    )

    started = time.perf_counter()
    try:
        score = scorer.score_messages([TEST_MESSAGE])[0]
    except (SpamcliError, ArithmeticError, ValueError) as error:
        checks.append(Check("scores", False, f"the test message could not be scored: {error}"))
        score = None
    if score is not None:
        milliseconds = (time.perf_counter() - started) * 1000
        if isinstance(score, float) and math.isfinite(score) and 0.0 <= score <= 1.0:
            label = scorer.verdict(score).label
            checks.append(
                Check(
                    "scores",
                    True,
                    f"the test message scores {score:.4f} ({label}) in {milliseconds:.1f} ms",
                )
            )
        else:
            checks.append(Check("scores", False, f"the test message scores {score!r}"))

    checks.append(_cutoffs_check(scorer.threshold, scorer.ham_cutoff))

    imported = "tensorflow" in sys.modules and not tensorflow_before
    installed = extras.is_installed("tensorflow")
    if imported:
        checks.append(
            Check("tensorflow", False, "scoring imported TensorFlow; it must not need it")
        )
    else:
        where = (
            "installed, for train"
            if installed
            else "not installed; only train needs it (pip install 'spamcli[train]')"
        )
        checks.append(Check("tensorflow", True, f"not needed to score; {where}"))
    return checks


def _cutoffs_check(spam_cutoff: float, ham_cutoff: float) -> Check:
    """Cut-offs strictly between 0 and 1, the ham one not above the spam one:
    a spam cut-off of 0 flags every message, and one of 1 only a score of
    exactly 1, which a model trained with label smoothing never gives."""
    band = (
        f", ham cut-off {ham_cutoff:.4f} (unsure between)"
        if ham_cutoff < spam_cutoff
        else " (no unsure band)"
    )
    detail = f"spam cut-off {spam_cutoff:.4f}{band}"
    if not 0.0 < spam_cutoff < 1.0:
        return Check("cut-offs", False, f"{detail}: the spam cut-off must be between 0 and 1")
    if not 0.0 < ham_cutoff <= spam_cutoff:
        return Check(
            "cut-offs", False, f"{detail}: the ham cut-off must be above 0 and not above spam"
        )
    return Check("cut-offs", True, detail)
