"""The tokenizer, the hashing and the header decoding as they were before
they were made fast (issue 17), kept as the definition the fast paths must
agree with: tests/test_fast_paths.py compares the two.

Plain loops, one word at a time; nothing here is used by spamcli itself.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable

from spamcli import config, mail
from spamcli.features import FeatureSpec, bucket_of_key
from spamcli.tokens import CONTENT_FIELDS, HEADER_NAME_JUNK, MAX_TOKEN_LENGTH

TOKEN_PATTERN = re.compile(r"\b\w\w+\b|[$!]")
DOTTED_NAME = re.compile(r"[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+")
FOLDING = re.compile(r"\r?\n(?=[ \t])")
MESSAGE_ID_HEADER = re.compile(
    rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE
)


def tokenize(text: str) -> list[str]:
    tokens = []
    for token in TOKEN_PATTERN.findall(text.lower()):
        if len(token) > MAX_TOKEN_LENGTH:
            token = f"skip:{token[0]}{len(token) // 10 * 10}"
        tokens.append(token)
    return tokens


def token_string(fields: Iterable[tuple[str, str]]) -> str:
    words: list[str] = []
    for field, text in fields:
        if field in CONTENT_FIELDS:
            words.extend(tokenize(text))
        else:
            prefix = HEADER_NAME_JUNK.sub("", field)[:MAX_TOKEN_LENGTH]
            words.extend(f"{prefix}:{token}" for token in tokenize(text))
            words.extend(
                f"{prefix}:{name[:MAX_TOKEN_LENGTH]}" for name in DOTTED_NAME.findall(text.lower())
            )
    return " ".join(words)


def message_tokens(raw: bytes, header_policy: str) -> str:
    """Every field extracted first, then every token: no early stop."""
    return token_string(mail.extract_fields(raw, header_policy))


def word_key(word: str) -> int:
    return zlib.crc32(word.encode("utf-8", "surrogatepass"))


def feature_indices(text: str, spec: FeatureSpec) -> list[int]:
    words = text.split()
    if spec.max_tokens is not None:
        words = words[: spec.max_tokens]
    keys = [word_key(word) for word in words]
    present = {bucket_of_key(key, spec.bits) for key in keys}
    present.update(
        bucket_of_key((first << 32) | second, spec.bits)
        for first, second in itertools.pairwise(keys)
    )
    return sorted(present)


def header_text(value: object) -> str:
    """mail._header_text without its shortcuts (no unfolding check, no ASCII test)."""
    text = FOLDING.sub("", str(value))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = mail._valid_text(text)
    if "=?" in text:
        text = mail._decode_encoded_words(text)
    return " ".join(text.split())


def message_id(raw: bytes) -> str | None:
    """mail.message_id as a pattern searched over a copy of the header block."""
    head = bytes(raw[: config.MAX_MESSAGE_BYTES])
    ends = [end for end in (head.find(b"\n\n"), head.find(b"\n\r\n")) if end >= 0]
    if ends:
        head = head[: min(ends) + 1]
    match = MESSAGE_ID_HEADER.search(head)
    if match is None:
        return None
    return " ".join(mail._decode_bytes(match.group(1), None).split()) or None
