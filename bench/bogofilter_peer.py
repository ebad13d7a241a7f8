"""bogofilter 1.2.5 (Debian package) as the benchmarks' peer: a word list
of its own in a folder, trained, asked for scores and taught one message at
a time, one process a step, as a mail setup runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from spamcli.config import SPAM
from spamcli.corpus import LabelledMessage

# bogofilter's own spam_cutoff: a message scoring this or more is spam.
SPAM_CUTOFF = 0.99


def installed() -> bool:
    return shutil.which("bogofilter") is not None


class WordList:
    """A bogofilter word list in DIRECTORY (its BOGOFILTER_DIR)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._environment = {**os.environ, "BOGOFILTER_DIR": str(directory)}

    def copy(self, directory: Path) -> WordList:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(self.directory, directory)
        return WordList(directory)

    def train(self, messages: Iterable[LabelledMessage]) -> None:
        """Register MESSAGES as two mbox files (-M), one process each: a
        process per training message took a minute."""
        messages = list(messages)
        for flag, label_is_spam in (("-s", True), ("-n", False)):
            mbox = self.directory / "training.mbox"
            with open(mbox, "wb") as handle:
                for message in messages:
                    if (message.label == SPAM) == label_is_spam:
                        handle.write(mbox_entry(message.raw))
            self._run([flag, "-M", "-I", str(mbox)])
            mbox.unlink()

    def score(self, raw: bytes) -> float:
        result = subprocess.run(
            ["bogofilter", "-T"], input=raw, env=self._environment, capture_output=True
        )
        fields = result.stdout.split()
        # An empty word list answers no score: even odds.
        return float(fields[1]) if len(fields) > 1 else 0.5

    def learn(self, raw: bytes, is_spam: bool) -> None:
        self._run(["-s" if is_spam else "-n"], raw)

    def _run(self, arguments: list[str], raw: bytes | None = None) -> None:
        subprocess.run(["bogofilter", *arguments], input=raw, env=self._environment, check=True)


def mbox_entry(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[-1]
    return b"From bench  Thu Jan  1 00:00:00 1970\n" + raw.replace(b"\nFrom ", b"\n>From ") + b"\n"
