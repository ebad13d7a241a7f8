"""Hyperparameters, limits and cut-offs, each with the reason for its default."""

from __future__ import annotations

from dataclasses import dataclass

# Header policies (see mail.py). ``content`` keeps what the sender wrote
# (Subject, sender, body); ``all`` keeps every header, each token prefixed by
# the header's name, as bogofilter does.
HEADER_POLICIES = ("content", "all")

# Only the first MAX_MESSAGE_BYTES of a message are parsed, and at most
# MAX_TEXT_CHARACTERS of text are taken from it, so a 50 MB attachment costs
# no more than a large ordinary message.
MAX_MESSAGE_BYTES = 1_000_000
MAX_TEXT_CHARACTERS = 200_000

# Labels, as folder names in a corpus and as verdicts.
HAM = "ham"
SPAM = "spam"
