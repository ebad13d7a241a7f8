"""One raw message (bytes) → the text fields the model sees.

Training and scoring both get their text from :func:`extract_fields`, so the
cleaning cannot drift between them. The function returns ``(field, text)``
pairs; ``field`` is a short lowercase name (``subject``, ``from``, ``body``,
``url``, ``attachment``, or a header's name under the ``all`` policy) that
the vectorizer may use to prefix tokens, as bogofilter does.

Choices, and the reasons for them:

* Parsing uses ``email.policy.compat32``. ``email.policy.default`` builds a
  structured object for every header and cost 2-4 ms a message on the
  SpamAssassin corpus; compat32 keeps raw strings and we decode only the few
  headers we use, which keeps a message well under a millisecond (see
  ``extract_fields`` for the figure). A message of simple MIME structure
  (one part, or one multipart of leaf parts: all but 50 of the corpus's
  6,046) is read by simple_mime.py instead, by compat32's rules, without
  importing the email package at all.
* Only the first ``config.MAX_MESSAGE_BYTES`` are parsed and at most
  ``config.MAX_TEXT_CHARACTERS`` of text are returned, so a 50 MB attachment
  costs no more than a large ordinary message. Non-text parts are never
  decoded: their MIME type and file name are all the model gets from them.
* Links in HTML (``href``/``src``) are invisible in the rendered text, yet
  where a message sends its reader is some of the strongest evidence of
  spam, so each link's host and path become a ``url`` field. The query string
  is dropped: it usually carries a per-recipient tracking code that would only
  add tokens seen once.
* The ``content`` policy keeps what the sender wrote (Subject, the sender's
  name and domain, the body) and the headers the sender's own software
  stamped on the message (mail program, MIME headers, Reply-To,
  Organization), and nothing that describes the receiving mailbox or the
  relays (Received, To, Cc, Delivered-To, Return-Path, Message-ID, which a
  relay may add, Date, list headers). Those differ between the corpora a
  model is trained on and the mail it later sees, which makes training look
  easy and the model useless elsewhere (the SpamBayes warning). The sender's
  headers are real evidence: with a TF-IDF logistic regression they took
  (1-AUC)% from 0.045 to 0.026 on the random split and from 1.87 to 1.70 on
  the time split, where every header gave 3.31.
* The ``origin`` policy adds one more field: the earliest ``Received``
  field, the relay where the message entered the mail system (each relay
  adds its field on top, so it is the last), without its ``for
  <recipient>`` and its date. It travels with the message whoever receives
  it, unlike the later hops, which describe the receiving mailbox. On the
  random split it took the network's (1-AUC)% from 0.0375 / 0.0394 /
  0.0445 to 0.0302 / 0.0365 / 0.0381 (training seeds 1, 2, 4; seeds 2 and
  4 with the relay's words after the body); on the time split 1.008 /
  1.035 / 1.311 became 1.153 / 0.978 / 1.056 (seeds 1 to 3), a draw; from
  SpamAssassin to CSDMC2010 0.957 became 1.112. A logistic regression over
  the same tokens: random 0.0362 to 0.0321, time 1.554 to 1.460; with the
  recipient and date kept, time 1.530, and with the last hop instead of
  the first, 2.224.
* Header fields named ``X-Spam-*`` are skipped under every policy: they are
  what a spam filter adds (``X-Spam-Flag``, ``X-Spam-Score``,
  ``X-Spam-Status``), and a message must score the same before and after it
  passes through one.
* Bad mail degrades, it never raises: unknown or lying charsets fall back to
  UTF-8 and then cp1252, broken MIME is read as text, and any unexpected
  exception still returns what was extracted so far.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime
import functools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from spamcli import config
from spamcli.simple_mime import Part, SimpleMessage, read_simple

if TYPE_CHECKING:
    import email.message

# The email package is imported where it is needed, not here: a message of
# simple MIME structure is read without it (spamcli/simple_mime.py), and
# its modules cost a one-message filter 7 ms of start-up.

# Parts whose decoded text the model reads; every other leaf part becomes an
# ``attachment`` field (its MIME type and file name).
_TEXT_TYPES = frozenset({"text/plain", "text/html"})

# Header names kept by the ``content`` policy (``from`` and ``reply-to`` are
# reduced to the display name and the domain of the address, see
# _sender_text): the sender's words, and what the sender's software wrote.
_CONTENT_HEADERS = frozenset(
    {
        "subject",
        "from",
        "reply-to",
        "organization",
        "x-mailer",
        "user-agent",
        "x-mimeole",
        "x-priority",
        "x-msmail-priority",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_ADDRESS_HEADERS = frozenset({"from", "reply-to"})
# The ``origin`` policy also keeps the earliest Received field, up to its
# " for <recipient>" or the ";" before its date.
_RELAY_HEADER = "received"
_RELAY_RECIPIENT_OR_DATE = re.compile(r";|\sfor\s", re.IGNORECASE)
# Field names extract_fields gives to parts of the body; under the ``all``
# policy a header of the same name is skipped rather than taken for body text.
_BODY_FIELDS = frozenset({"body", "url", "attachment"})

# Prefix of the headers spam filters add; never model input.
_SPAMCLI_HEADER_PREFIX = "x-spam-"

# The parser checks every line against the boundary of each enclosing
# multipart, so nesting costs depth squared: 900 nested levels in 47 KB took
# 250 ms, and past ~1000 levels Python's recursion limit ends the parse. Mail
# nests a few levels (a digest of 50 messages has ~50 boundaries); past this
# many boundary parameters the rest of the message is not parsed.
_MAX_BOUNDARY_PARAMETERS = 100
_BOUNDARY_PARAMETER = re.compile(rb"boundary", re.IGNORECASE)
# Three or more line breaks in a row: two or more blank lines. Two
# alternatives rather than (?:\r?\n){3,}, whose group repetition took 0.2 s
# over a megabyte of line breaks; a repeated single byte takes 2 ms.
_BLANK_LINE_RUNS = re.compile(rb"\n\n\n+|\n(?:\r\n){2,}")

# Mail clients routinely label text with a charset and write bytes from its
# vendor superset (curly quotes from cp1252 in "iso-8859-1" mail). Browsers
# decode these labels as the superset (WHATWG Encoding Standard); so do we.
_CHARSET_SUPERSETS = {
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}

# Codecs Python knows that are no mail charset: escape decoders would
# interpret backslashes, and punycode decoding is quadratic in its input.
_REFUSED_CODECS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"}
)

# RFC 5322 unfolding: a line break followed by white space is white space.
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_DATE_HEADER = re.compile(rb"^date:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID_HEADER = re.compile(
    rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE
)


def extract_fields(raw: bytes, headers: str = "content") -> list[tuple[str, str]]:
    """Return (field, text) pairs for one raw message; never raises on any bytes.

    ``headers`` is a policy from ``config.HEADER_POLICIES``: ``"content"``
    keeps the Subject, the sender (display name and domain) and the headers
    in ``_CONTENT_HEADERS``; ``"origin"`` adds the earliest Received field
    (see ``_relay_text``); ``"all"`` keeps every header field. Header
    fields come under their lowercased names. Under every policy, each
    text/plain or text/html part gives a ``body`` field (HTML as text), each
    HTML link a ``url`` field (host and path) and each other part an
    ``attachment`` field (MIME type and file name). Headers named
    ``X-Spam-*`` are always skipped.

    Cost on the SpamAssassin corpora (6,046 messages, Python 3.11, one core):
    median 0.15 ms a message under ``content`` and 0.20 ms under ``all``; mean
    0.32 ms under ``all``, 0.145 ms of it in HTMLParser and 0.10 ms in the
    email parser (0.36 ms before the shortcuts of _field_name, _header_text
    and HtmlTextParser.updatepos); 0.28 ms once simple_mime.py read most
    messages (0.33 ms with the email package alone, the same run); on
    2026-12-06, with html_text.py's scanner reading most HTML, a mean of
    0.18-0.19 ms and a median of 0.13 ms under ``all``. A 50 MB message
    costs ~15 ms.

    Raises ``ValueError`` for an unknown policy, the one error that is the
    caller's and not the message's.
    """
    return list(iter_fields(raw, headers))


def iter_fields(
    raw: bytes, headers: str = "content", wants_more: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, str]]:
    """extract_fields, field by field: a caller that stops early (the
    tokenizer, once it has the tokens a model reads) leaves the rest of the
    message's parts undecoded. The same fields in the same order; the policy
    is checked at the call, before the first field is asked for.

    WANTS_MORE(text) says whether the caller, given a field that starts with
    TEXT, would still read on. With it an HTML part is parsed only until its
    text has what the caller reads, so its body field may be shorter than
    extract_fields' and no more fields follow it; the caller sees the same
    beginning.

    Little on ordinary mail (0.01 ms a message of the SpamAssassin corpora,
    where the email parser has read every part already), more on long
    multipart mail: the hostile catalogue's 10,000 parts took the scorer's
    tokens from 132 to 94 ms.
    """
    if headers not in config.HEADER_POLICIES:
        raise ValueError(
            f"unknown header policy {headers!r}; "
            f"expected one of {', '.join(config.HEADER_POLICIES)}"
        )
    return _iter_fields(raw, headers, wants_more)


def _iter_fields(
    raw: bytes, headers: str, wants_more: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, str]]:
    collector = _FieldCollector(config.MAX_TEXT_CHARACTERS)
    given = 0
    try:
        # The extraction pauses after the headers and after each part; the
        # fields it has added by then are given out before it goes on.
        for _ in _extract_into(collector, raw[: config.MAX_MESSAGE_BYTES], headers, wants_more):
            while given < len(collector.fields):
                given += 1
                yield collector.fields[given - 1]
    except Exception:
        # A parser bug or an unforeseen input: keep what was extracted; if
        # that is nothing, the raw bytes as text are still better than no text.
        if not collector.fields:
            try:
                collector.add("body", _decode_bytes(bytes(raw[: config.MAX_MESSAGE_BYTES]), None))
            except (TypeError, ValueError):
                return  # not even bytes
    yield from collector.fields[given:]


def message_id(raw: bytes) -> str | None:
    """Return the message's Message-ID header value, stripped, or None.

    Reads only the header block with a regular expression, without parsing
    the message, so it is cheap to call on every message of a corpus (to
    find duplicates). Never raises.
    """
    try:
        head = _header_block_of(raw)
        # The field's line found in C, then read by the pattern from there:
        # a case-blind pattern tried at every line start took predict's
        # workers 12 us a SpamAssassin message, 2 % of their time.
        lowered = head.lower()
        if lowered.startswith(b"message-id:"):
            start = 0
        else:
            start = lowered.find(b"\nmessage-id:") + 1
            if not start:
                return None
        match = _MESSAGE_ID_HEADER.match(head, start)
        if match is None:
            return None
        value = " ".join(_decode_bytes(match.group(1), None).split())
        return value or None
    except (TypeError, ValueError):  # not bytes at all
        return None


def _header_block_of(raw: bytes) -> bytes:
    """RAW's bytes up to its first blank line (or all of them, within
    MAX_MESSAGE_BYTES); TypeError for what is not bytes."""
    # Sliced before bytes() is called: bytes() of a number is that many
    # zeros, where a slice of a number is the TypeError wanted.
    head = raw if type(raw) is bytes else bytes(raw[: config.MAX_MESSAGE_BYTES])
    blank = head.find(b"\n\n", 0, config.MAX_MESSAGE_BYTES)
    # A blank line written "\r\n", looked for before the first "\n\n" only
    # (one that overlaps it ends by blank + 1).
    crlf_blank = head.find(b"\n\r\n", 0, config.MAX_MESSAGE_BYTES if blank < 0 else blank + 1)
    ends = [end for end in (blank, crlf_blank) if end >= 0]
    return head[: min(ends) + 1] if ends else head[: config.MAX_MESSAGE_BYTES]


def message_date(raw: bytes) -> float | None:
    """The message's Date header as a POSIX timestamp, or None when it has
    none that parses. A date without a zone is read as UTC. Reads only the
    header block, as message_id does; never raises."""
    try:
        match = _DATE_HEADER.search(_header_block_of(raw))
        if match is None:
            return None
        import email.utils

        moment = email.utils.parsedate_to_datetime(
            " ".join(_decode_bytes(match.group(1), None).split())
        )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


class _FieldCollector:
    """The growing list of fields, within a budget of text characters."""

    def __init__(self, character_budget: int) -> None:
        self.fields: list[tuple[str, str]] = []
        self.remaining_characters = character_budget

    @property
    def full(self) -> bool:
        return self.remaining_characters <= 0

    def add(self, field: str, text: str) -> None:
        """Append a field unless its text is blank; truncate it to the budget."""
        if self.full:
            return
        # NUL is text to Python but a string terminator to C libraries downstream.
        text = text.replace("\x00", " ").strip()
        if not text:
            return
        text = text[: self.remaining_characters]
        self.fields.append((field, text))
        self.remaining_characters -= len(text)


def _extract_into(
    collector: _FieldCollector,
    raw: bytes,
    policy: str,
    wants_more: Callable[[str], bool] | None = None,
) -> Iterator[None]:
    """Add the message's fields to COLLECTOR, pausing (yielding) after the
    headers and after each part."""
    prepared = _limit_nesting(_collapse_blank_lines(raw))
    message: SimpleMessage | email.message.Message | None = read_simple(prepared)
    if message is None:
        import email

        # No policy argument: compat32 is the parser's default, and importing
        # email.policy to name it costs a one-message filter 5 ms of start-up.
        message = email.message_from_bytes(prepared)
    taken_headers: set[str] = set()
    earliest_relay: str | None = None
    for name, value in message.raw_items():
        if collector.full:
            return
        try:
            field = _field_name(name)
            if not field or field.startswith(_SPAMCLI_HEADER_PREFIX) or field in _BODY_FIELDS:
                continue
            if policy == "all":
                collector.add(field, _header_text(value))
            elif field == _RELAY_HEADER:
                # Each relay adds its Received field on top: the last one is
                # where the message entered the mail system.
                earliest_relay = value
            elif field in _CONTENT_HEADERS and field not in taken_headers:
                # Only the first of each: a second Subject or From is a defect.
                taken_headers.add(field)
                collector.add(
                    field,
                    _sender_text(value) if field in _ADDRESS_HEADERS else _header_text(value),
                )
        except Exception:
            continue
    if policy == "origin" and earliest_relay is not None:
        # Read once, for the one field kept, not for every relay's.
        with contextlib.suppress(Exception):
            collector.add(_RELAY_HEADER, _relay_text(earliest_relay))
    yield
    seen_urls: set[str] = set()
    for part in _parts(message):
        if collector.full:
            return
        try:
            _add_part(collector, part, seen_urls, wants_more)
        except Exception:
            continue
        yield


def _collapse_blank_lines(raw: bytes) -> bytes:
    """Runs of blank lines → one blank line.

    The parser's cost is per line: a megabyte of empty lines took it 0.43 s
    and extract_fields 0.65 s, against 0.01 s for a megabyte in one line.
    Blank lines carry no token, and one blank line still ends the headers
    of the message and of each part, so the tokens stay the same.
    """
    if b"\n\n\n" not in raw and b"\n\r\n\r\n" not in raw:
        return raw
    return _BLANK_LINE_RUNS.sub(_first_two_line_breaks, raw)


def _first_two_line_breaks(run: re.Match[bytes]) -> bytes:
    text = run.group()
    return text[: text.index(b"\n", text.index(b"\n") + 1) + 1]


def _limit_nesting(raw: bytes) -> bytes:
    """Cut the message before its (_MAX_BOUNDARY_PARAMETERS + 1)-th boundary parameter."""
    # Two counts in C cost microseconds; the regular expression runs only on
    # the rare message that may exceed the limit.
    if raw.count(b"oundary") + raw.count(b"OUNDARY") <= _MAX_BOUNDARY_PARAMETERS:
        return raw
    for count, match in enumerate(_BOUNDARY_PARAMETER.finditer(raw), start=1):
        if count > _MAX_BOUNDARY_PARAMETERS:
            return raw[: match.start()]
    return raw


def _parts(
    message: SimpleMessage | email.message.Message,
) -> Iterator[Part | email.message.Message]:
    """The parts whose text or type becomes fields, in document order."""
    if isinstance(message, SimpleMessage):
        yield from message.parts
    else:
        yield from _leaf_parts(message)


def _leaf_parts(message: email.message.Message) -> Iterator[email.message.Message]:
    """Yield the leaf parts in document order.

    Iterative rather than ``Message.walk()``, whose recursion a deeply nested
    message would exhaust.
    """
    import email.message

    stack = [message]
    while stack:
        part = stack.pop()
        if part.is_multipart():
            # Only then is get_payload() safe: for a leaf with 8-bit bytes it
            # decodes with the declared charset, which may raise.
            children = part.get_payload()
            stack.extend(
                reversed([child for child in children if isinstance(child, email.message.Message)])
            )
        else:
            yield part


def _add_part(
    collector: _FieldCollector,
    part: Part | email.message.Message,
    seen_urls: set[str],
    wants_more: Callable[[str], bool] | None = None,
) -> None:
    content_type = part.get_content_type()
    # A multipart whose boundary is missing or never appears is left as one
    # text payload by the parser: read it as text rather than lose it.
    if content_type not in _TEXT_TYPES and not content_type.startswith("multipart/"):
        filename = part.get_filename()
        description = content_type
        if filename:
            description += " " + _header_text(filename)
        collector.add("attachment", description)
        return
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return
    text = _decode_bytes(payload, part.get_content_charset())
    if content_type == "text/html":
        from spamcli.html_text import html_to_text

        text, urls, cut = html_to_text(text, collector.remaining_characters, wants_more)
        collector.add("body", text)
        if cut:
            # The caller reads no further than this text: links found so
            # far would be fields after it, and the links after the cut
            # were never seen.
            collector.remaining_characters = 0
            return
        for url in urls:
            if url not in seen_urls:
                # A link repeated on every image of a message is one fact,
                # not thirty.
                seen_urls.add(url)
                collector.add("url", url)
    else:
        collector.add("body", text)


@functools.lru_cache(maxsize=256)
def _codec_name(charset: str) -> str | None:
    """The Python codec for a declared charset, or None if unknown or refused."""
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name
    except (LookupError, ValueError, TypeError):
        return None
    if name in _REFUSED_CODECS:
        return None
    return _CHARSET_SUPERSETS.get(name, name)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, then UTF-8, then cp1252 (never fails).

    A declared charset is often wrong (UTF-8 declared, Latin-1 written), so a
    strict decode that fails moves on to the next guess; cp1252 with
    replacement is the last resort and also reads Latin-1 text correctly.
    """
    candidates = []
    codec_name = _codec_name(charset) if charset else None
    if codec_name:
        candidates.append(codec_name)
    if codec_name != "utf-8":
        candidates.append("utf-8")
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (UnicodeError, LookupError, ValueError):
            continue
    return data.decode("cp1252", errors="replace")


def _valid_text(value: str) -> str:
    """Turn bytes the parser smuggled in as surrogates back into real text.

    The parser reads 8-bit header bytes as lone surrogates, which cannot be
    written out as UTF-8; such bytes are decoded as UTF-8, else as cp1252.
    """
    if value.isascii():  # no surrogate; a flag of the string, read in no time
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        data = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        # A surrogate that is no smuggled byte (decoded from "\\ud800" text).
        return value.encode("utf-8", errors="replace").decode("utf-8")
    return _decode_bytes(data, None)


def _field_name(name: str) -> str:
    """A header's field name: its name as text, lower-cased. Cached: a few
    dozen names make up nearly all of a corpus's header fields (short names
    only, so that the cache stays small whatever names a message makes up)."""
    if len(name) > _MAX_CACHED_NAME_CHARACTERS:
        return _header_text(name).lower()
    return _cached_field_name(name)


_MAX_CACHED_NAME_CHARACTERS = 100


@functools.lru_cache(maxsize=1024)
def _cached_field_name(name: str) -> str:
    return _header_text(name).lower()


def _header_text(value: object) -> str:
    """Decode a raw header value (RFC 2047 words, 8-bit bytes) to one line."""
    text = str(value)
    if "\n" in text:  # unfolding otherwise finds nothing, and skipping it is cheaper
        text = _FOLDING.sub("", text)
    text = _valid_text(text)
    if "=?" in text:
        text = _decode_encoded_words(text)
    return " ".join(text.split())


def _decode_encoded_words(text: str) -> str:
    import email.errors
    import email.header

    try:
        words = email.header.decode_header(text)
    except (email.errors.HeaderParseError, ValueError, UnicodeError):
        return text  # e.g. an encoded word whose base64 is broken
    pieces = []
    for word, charset in words:
        if isinstance(word, str):
            pieces.append(word)
        elif charset is None:
            # decode_header returns the text between encoded words as bytes
            # made with raw-unicode-escape; undo exactly that.
            pieces.append(word.decode("raw-unicode-escape", errors="replace"))
        else:
            # RFC 2231 allows a language after the charset: utf-8*en.
            pieces.append(_decode_bytes(word, charset.partition("*")[0]))
    return _valid_text("".join(pieces))


def _sender_text(value: str) -> str:
    """From ``"John Doe" <john@mail.example.com>`` keep ``John Doe mail.example.com``.

    The display name and the domain say who sends; the local part is often
    random in spam and adds only tokens seen once.
    """
    # email.utils.parseaddr as Python 3.11.7 writes it (the first address of
    # the list, or two empty strings), from the module it comes from:
    # email.utils imports socket, random and datetime (4 ms of a one-message
    # filter's start-up, against 0.7 ms), and later Pythons' parseaddr
    # refuses some malformed lists (its strict mode), which would give a
    # model other tokens on another Python.
    from email._parseaddr import AddressList

    unfolded = _valid_text(_FOLDING.sub("", value))
    addresses = AddressList(unfolded).addresslist
    display_name, address = addresses[0] if addresses else ("", "")
    if "@" not in address:
        # Not an address at all ("From: John Doe"): keep what is there.
        return _header_text(unfolded)
    domain = address.rpartition("@")[2].strip().lower()
    return f"{_header_text(display_name)} {domain}".strip()


def _relay_text(value: str) -> str:
    """A Received field without its recipient and its date.

    ``from host (name [192.0.2.1]) by mx.example.org with ESMTP id 1A2B for
    <user@example.org>; Thu, 30 May 2002 20:21:25 +0200`` keeps ``from host
    (name [192.0.2.1]) by mx.example.org with ESMTP id 1A2B``: the recipient
    is the receiving mailbox, and the date is when the mail was collected,
    both what a model must not learn from (see the module's doc).
    """
    return _RELAY_RECIPIENT_OR_DATE.split(_header_text(value), maxsplit=1)[0]


# "Is this mail?" is judged on the first bytes only: a header block starts
# there, and binary data shows itself there.
_SNIFF_BYTES = 8192
# A header field's first line: a name of printable ASCII other than the
# colon (RFC 5322, section 2.2), then the colon; obsolete syntax allows
# white space before it.
_HEADER_FIELD_START = re.compile(rb"[!-9;-~]+[ \t]*:")
# Bytes no text holds: C0 controls other than tab, line breaks and form
# feed, and DEL. 8-bit bytes are left alone: legacy charsets use them all.
_CONTROL_BYTES = bytes([*range(0, 9), 11, *range(14, 27), *range(28, 32), 127])
# More than one byte in ten a control byte: no text in any charset, while a
# message with a stray escape or two (ANSI colours pasted in) stays mail.
_MAX_CONTROL_SHARE = 0.1


def looks_like_mail(raw: bytes) -> str | None:
    """None if RAW looks like an email message, else the reason it does not:
    ``empty``, ``binary data`` or ``no header block``.

    A message is a header block, then a body; a first line of ``From ``
    (the envelope line of an mbox or a delivery agent) may come before it.
    Such input is still scored (parsing never fails), but a verdict on it
    means little, and learning it would teach the model about something
    else: `predict` warns, `learn` refuses without --force. Never raises.
    """
    head = raw[:_SNIFF_BYTES]
    # The whole message stripped (a copy of it) only when its head is blank.
    if not head.strip() and not raw.strip():
        return "empty"
    if b"\0" in head or len(head.translate(None, _CONTROL_BYTES)) < len(head) * (
        1 - _MAX_CONTROL_SHARE
    ):
        return "binary data"
    first_line, _, rest = head.partition(b"\n")
    if first_line.startswith(b"From "):
        first_line = rest.partition(b"\n")[0]
    if not _HEADER_FIELD_START.match(first_line):
        return "no header block"
    return None
