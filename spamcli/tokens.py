"""Text fields of a message → the token string the model reads.

This is the only place that decides what a token is. The result is a string
of tokens separated by single spaces, which features.py splits on white
space: a token never contains whitespace of any kind.

Words of the message's content (Subject, sender, body, link targets,
attachment types and names) are plain tokens. Every other header's words
(the sender's software headers under the ``content`` policy, those and the
first relay's Received field under ``origin``, every header under ``all``)
carry the header's name as a prefix (``x-mailer:outlook``), as bogofilter
does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from spamcli.mail import iter_fields

# Words of two or more letters or digits, split at every punctuation mark,
# plus "$" and "!" on their own. Keeping punctuation inside tokens
# ("example.com", "$1,000") split the evidence over rare variants: with a
# TF-IDF logistic regression on the random split it gave (1-AUC)% 0.24
# against 0.044 for these plain words.
#
# Written without the \b of r"\b\w\w+\b|[$!]", which finds the same
# tokens: a run of word characters is matched whole from its start, so no
# match starts or ends inside one, and the 1.4x cost of checking that went
# (0.12 to 0.085 ms a message of the SpamAssassin corpora, 6,046 messages;
# tests/test_fast_paths.py compares the two).
TOKEN_PATTERN = re.compile(r"\w\w+|[$!]")

# In a header, host and domain names, IP addresses and version numbers are
# also tokens whole ("received:mail3.intermedia.net", "x-mailer:3.53"), as
# bogofilter keeps them: the relays and programs a mailbox's mail comes
# through are evidence its parts are not. Online, over seeds 1 to 3, with
# every header read: the random split's (1-AUC)% 0.0153 without them, 0.0116
# with them; the time split 0.111 and 0.120 (a draw within the seeds'
# spread); CSDMC2010 after SpamAssassin 0.0020 and 0.0022. Within the body,
# split as words, they were as good (0.0121).
#
# The names of r"[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+", found faster: a try
# that fails inside a run of letters, digits and hyphens fails at each later
# start in it too (all reach the same end of the run), so only a run's first
# letter or digit is tried (the look-behind), and nothing is given back (the
# possessive *+): 0.063 to 0.022 ms a message (tests/test_fast_paths.py
# checks the two agree).
DOTTED_NAME = re.compile(r"(?<![a-z0-9])[a-z0-9][a-z0-9-]*+(?:\.[a-z0-9-]+)+")

# Fields whose words are plain tokens; any other field is a header's name.
# The Subject's and the sender's words under a prefix of their own, as
# bogofilter and SpamBayes read them ("subject:cash"), were measured and not
# kept (2026-12-06, bench/online.py, seeds 1 to 5): the random stream 0.0131
# against 0.0129.
CONTENT_FIELDS = frozenset({"subject", "from", "body", "url", "attachment"})
# A malformed header's name may hold anything; a prefix holds no whitespace.
HEADER_NAME_JUNK = re.compile(r"[^\w-]")

# Longer tokens are encoded and other junk: SpamBayes replaces them with a
# "skip" token that keeps only the first character and a length bucket.
MAX_TOKEN_LENGTH = 30

# The first window of a long text that _tokens_of_lowered searches, in
# characters per token needed: 19 bodies in 20 of the SpamAssassin corpora have
# fewer than 7.8 characters a token (a window too short grows fourfold).
_FIRST_WINDOW_CHARACTERS_PER_TOKEN = 8

# Word n-grams the vectorizer builds from the token string: unigrams and
# bigrams, the words of an n-gram joined with one space.
NGRAMS = 2
NGRAM_SEPARATOR = " "


def tokenize(text: str) -> list[str]:
    """The tokens of one piece of text, lower-cased."""
    return _tokens_of_lowered(text.lower())


def _tokens_of_lowered(lowered: str, needed: int | None = None) -> list[str]:
    """tokenize for text already lower-cased; with NEEDED, only the first
    NEEDED tokens (or all, if there are fewer).

    A long text is searched a window at a time: the tokens of its first
    characters are its first tokens, all but the last, which the window's
    end may have cut, so a window that holds more than NEEDED tokens has
    found the first NEEDED. The whole text is lower-cased first, never a
    window: Greek capital sigma lower-cases by what follows it.
    """
    if needed is not None and needed <= 0:
        return []
    if needed is None or len(lowered) <= _FIRST_WINDOW_CHARACTERS_PER_TOKEN * needed:
        tokens = _find_tokens(lowered, len(lowered))
        if needed is not None:
            del tokens[needed:]
    else:
        window = _FIRST_WINDOW_CHARACTERS_PER_TOKEN * needed
        while True:
            tokens = _find_tokens(lowered, window)
            if len(tokens) > needed:
                del tokens[needed:]
                break
            if window >= len(lowered):
                break
            window *= 4
    if _has_long_token(lowered, tokens):
        tokens = [
            f"skip:{token[0]}{len(token) // 10 * 10}" if len(token) > MAX_TOKEN_LENGTH else token
            for token in tokens
        ]
    return tokens


def _find_tokens(text: str, end: int) -> list[str]:
    """TOKEN_PATTERN.findall(TEXT, 0, END), for ASCII text with bytes
    operations in C: every byte that is not a word character, "$" or "!"
    becomes a space, "$" and "!" get spaces of their own, and the pieces of
    one character that remain (a letter or digit alone) are dropped. The
    tokenizer of the SpamAssassin corpora's ASCII fields went from 8.8 to
    6.1 us a field (tests/test_fast_paths.py checks the two agree)."""
    if not text.isascii():
        return TOKEN_PATTERN.findall(text, 0, end)
    data = text.encode("ascii") if end >= len(text) else text[:end].encode("ascii")
    if b"$" in data:
        data = data.replace(b"$", b" $ ")
    if b"!" in data:
        data = data.replace(b"!", b" ! ")
    pieces = data.translate(_ASCII_TOKEN_BYTES).decode("ascii").split()
    return [piece for piece in pieces if len(piece) > 1 or piece == "$" or piece == "!"]


# ASCII word characters (the \w of a str pattern), "$" and "!" as they are;
# every other byte a space.
_ASCII_TOKEN_BYTES = bytes(
    byte if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "_$!") else 32
    for byte in range(256)
)


def _has_long_token(text: str, found: list[str]) -> bool:
    """Whether any of FOUND (found in TEXT) is longer than MAX_TOKEN_LENGTH,
    which few are: one pass in C, none for a text too short to hold one."""
    return len(text) > MAX_TOKEN_LENGTH and max(map(len, found), default=0) > MAX_TOKEN_LENGTH


def token_string(
    fields: Iterable[tuple[str, str]],
    max_tokens: int | None = None,
    taken: list[int] | None = None,
) -> str:
    """The model's input text for a message's (field, text) pairs; with
    MAX_TOKENS, only its first MAX_TOKENS tokens, and FIELDS is read no
    further than they need (mail.iter_fields then parses no more parts).

    Half the SpamAssassin corpora's messages have more than 500 tokens (606 on
    average, every header read): stopping at a model's 500 took the
    tokenizer from 0.170 to 0.137 ms a message.

    TAKEN, a one-item list, is kept at the number of tokens taken so far,
    for a FIELDS that reads on only while they are wanted (message_tokens).
    """
    pieces: list[str] = []
    count = 0
    for field, text in fields:
        needed = None if max_tokens is None else max_tokens - count
        if needed is not None and needed <= 0:
            break
        if field in CONTENT_FIELDS:
            words = _tokens_of_lowered(text.lower(), needed)
            if words:
                pieces.append(" ".join(words))
            count += len(words)
        else:
            if len(field) + len(text) <= _MAX_CACHED_HEADER_CHARACTERS:
                piece, word_count = _cached_header_tokens(field, text)
            else:
                piece, word_count = _header_tokens(field, text)
            if word_count:
                if needed is not None and word_count > needed:
                    # The last piece (a content field gives no more than
                    # it is asked for): only its first tokens are read.
                    piece = " ".join(piece.split(" ", needed)[:needed])
                pieces.append(piece)
            count += word_count
        if taken is not None:
            taken[0] = count
    return " ".join(pieces)


def _header_tokens(field: str, text: str) -> tuple[str, int]:
    """A header field's tokens, each after the header's name and a colon,
    and how many there are."""
    lowered = text.lower()
    words = _tokens_of_lowered(lowered)
    if "." in lowered:  # else there is no dotted name
        names = DOTTED_NAME.findall(lowered)
        if _has_long_token(lowered, names):
            names = [name[:MAX_TOKEN_LENGTH] for name in names]
        words += names
    # Joined in C, "prefix:" before each word, rather than an f-string for
    # each: with the one-pass check for long tokens, 0.265 to 0.249 ms a
    # message of the SpamAssassin corpora.
    return (_joined_with_prefix(field, words) if words else ""), len(words)


# A mailbox's header fields repeat (MIME-Version, Content-Type, a list's
# own headers, a sender's X-Mailer): scoring the SpamAssassin corpora's
# 6,046 messages, 52 % of the header fields looked up here were found
# (67,000 of 128,000; 54 % with 4,096 entries, which took a daemon's
# workers 2.5 MiB each and past bench/serve.py's memory bar), and
# message_text went from 0.433 to 0.422 ms a message. A long text (a
# Received line, say) is rarely seen twice and is not kept, so the cache
# holds at most 1,024 keys of 512 characters, full within the first
# thousand messages.
_MAX_CACHED_HEADER_CHARACTERS = 512
_cached_header_tokens = functools.lru_cache(maxsize=1024)(_header_tokens)


def _joined_with_prefix(field: str, words: list[str]) -> str:
    """A header's words, each after the header's name and a colon."""
    prefix = _header_prefix(field)
    return prefix + (" " + prefix).join(words)


def _header_prefix(field: str) -> str:
    """The prefix of a header's tokens, "x-mailer:" for x-mailer. Cached, as
    mail._field_name is: a few dozen names make up nearly all header fields
    (long ones, made up, are not). With the shortcuts for no dot and no long
    token, the tokenizer went from 0.137 to 0.130 ms a message of the
    SpamAssassin corpora."""
    if len(field) > _MAX_CACHED_FIELD_CHARACTERS:
        return _prefix_of(field)
    return _cached_prefix(field)


_MAX_CACHED_FIELD_CHARACTERS = 100


def _prefix_of(field: str) -> str:
    return HEADER_NAME_JUNK.sub("", field)[:MAX_TOKEN_LENGTH] + ":"


_cached_prefix = functools.lru_cache(maxsize=1024)(_prefix_of)


def ngrams(words: list[str]) -> list[str]:
    """Unigrams then bigrams, the words of a bigram joined by one space."""
    grams = list(words)
    for size in range(2, NGRAMS + 1):
        grams.extend(
            NGRAM_SEPARATOR.join(words[start : start + size])
            for start in range(len(words) - size + 1)
        )
    return grams


def message_tokens(raw: bytes, header_policy: str, max_tokens: int | None = None) -> str:
    """The model's input for one raw message: the one function that training
    and scoring both call, so cleaning cannot drift between them. With
    MAX_TOKENS, its first MAX_TOKENS tokens only (the ones a model with
    that ``FeatureSpec.max_tokens`` reads), for less work."""
    if max_tokens is None:
        return token_string(iter_fields(raw, header_policy))
    taken = [0]

    def wants_more(text: str) -> bool:
        # Two tokens to spare: where the text was cut, its last token may be
        # cut too, and the one before it can change case (a final sigma).
        # An HTML part's parse stops once this is False: most HTML mail of
        # the SpamAssassin corpora then parses its first 2 KB, not all of it.
        needed = max_tokens - taken[0]
        if needed <= 0:  # the headers gave them all
            return False
        return len(_tokens_of_lowered(text.lower(), needed + 2)) < needed + 2

    return token_string(iter_fields(raw, header_policy, wants_more), max_tokens, taken)
