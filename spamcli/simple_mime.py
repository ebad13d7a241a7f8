"""A message of simple MIME structure, read without the email package.

Most mail is one text part, or one multipart whose parts are leaves (text,
HTML, attachments): all but 16 of the SpamAssassin corpora's 6,046
messages. For those, :func:`read_simple` gives what
``email.message_from_bytes`` (policy compat32) and mail.py's use of it
give: the same header fields, and for each leaf part in order the same
content type, charset, file name and decoded payload, by the same rules,
written out here for these shapes of message. Anything else returns None,
and mail.py parses the message with the email package as before: a nested
multipart or a message/* part, a multipart/digest, a missing boundary or
one that never starts a part, two boundary lines in a row, anything
unusual in a header block (a first line that continues no field, a
``From`` line past the first, a field with no name), 8-bit bytes in the
MIME fields, RFC 2231 parameters, uuencoded text.
tests/test_simple_mime.py checks the two agree, on made-up messages and on
every message of the corpora.

Why: the email package is 7 ms of a one-message filter's start-up (its
modules import socket, random, calendar and more), and its parser a fifth
of a message's cost in bulk: email.message_from_bytes took 0.103 ms a
message of the SpamAssassin corpora, of 0.48 ms for the tokens, and
read_simple takes 0.053 ms, decoding the payloads included.
"""

from __future__ import annotations

import binascii
import re

# The email package's own patterns (email/feedparser.py): a line that can
# belong to a header block (its headerRE, "^(From |[\041-\071\073-\176]*:|[\t ])"),
# here every such line from a position on in one match, and a line break.
# One match a block, not two a line: _header_block went from 139 to 107 us
# a message of the SpamAssassin corpora.
_HEADER_LINES = re.compile(
    r"(?:(?:From |[\041-\071\073-\176]*+:|[\t ])[^\r\n]*+(?:\r\n|\r|\n|\Z))*+"
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# One line with its line break, split as the email parser splits its input
# (io.StringIO with newline="": \r\n, \r or \n).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# What get_payload(decode=True) decodes as uuencoded text: left to the
# email package.
_UUENCODED = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_LINE_BREAKS = (b"\r\n", b"\r", b"\n")


class Part:
    """One leaf part (or the whole message of one part), with the methods
    of email.message.Message that mail.py calls on a leaf, giving what they
    give."""

    __slots__ = ("content_type", "disposition_value", "payload", "type_value")

    def __init__(
        self,
        content_type: str,
        type_value: str | None,
        disposition_value: str | None,
        payload: bytes,
    ) -> None:
        self.content_type = content_type
        self.type_value = type_value
        self.disposition_value = disposition_value
        self.payload = payload

    def get_content_type(self) -> str:
        return self.content_type

    def get_content_charset(self) -> str | None:
        # Message.get_content_charset: ASCII, lower-cased.
        charset = _parameter(self.type_value, "charset")
        if charset is None or not charset.isascii():
            return None
        return charset.lower()

    def get_filename(self) -> str | None:
        # Message.get_filename: Content-Disposition's filename, else
        # Content-Type's name, unquoted once more (collapse_rfc2231_value).
        filename = _parameter(self.disposition_value, "filename")
        if filename is None:
            filename = _parameter(self.type_value, "name")
        if filename is None:
            return None
        return _unquote(filename).strip()

    def get_payload(self, decode: bool = False) -> bytes:
        assert decode, "only the decoded payload is kept"
        return self.payload


class SimpleMessage:
    """The message's header fields, as raw_items gives them, and its leaf parts."""

    __slots__ = ("headers", "parts")

    def __init__(self, headers: list[tuple[str, str]], parts: list[Part]) -> None:
        self.headers = headers
        self.parts = parts

    def raw_items(self) -> list[tuple[str, str]]:
        return self.headers


def read_simple(raw: bytes) -> SimpleMessage | None:
    """RAW as a message of simple MIME structure, or None where the email
    package must read it (see the module's doc). Never raises on bytes."""
    text = raw.decode("ascii", "surrogateescape")
    block = _header_block(text, 0, len(text))
    if block is None:
        return None
    headers, body = block
    content_type = _checked_content_type(headers, "text/plain")
    if content_type is None:
        return None
    if content_type.startswith("multipart/"):
        if content_type == "multipart/digest":
            return None  # its parts default to message/rfc822
        parts = _multipart_parts(text, raw, body, _first(headers, "content-type"))
        return None if parts is None else SimpleMessage(headers, parts)
    if content_type.startswith("message/"):
        return None
    part = _leaf(headers, content_type, raw, body, len(raw), strip_line_break=False)
    return None if part is None else SimpleMessage(headers, [part])


def _header_block(text: str, start: int, end: int) -> tuple[list[tuple[str, str]], int] | None:
    """The fields of the header block at START, and where its body starts;
    None for a block the email package reads with a defect."""
    block = _HEADER_LINES.match(text, start, end)
    assert block is not None  # it matches no line at all, if need be
    position = block.end()
    header_lines = _LINE.findall(text, start, position)
    blank_line = _LINE_BREAK.match(text, position, end)
    if blank_line is not None:
        position = blank_line.end()  # the blank line that ends the headers
    headers = _header_fields(header_lines)
    return None if headers is None else (headers, position)


def _checked_content_type(headers: list[tuple[str, str]], default: str) -> str | None:
    """Message.get_content_type, or None where the MIME fields hold what
    compat32 reads otherwise (8-bit bytes: a Header object; an asterisk:
    perhaps an RFC 2231 parameter)."""
    for name in ("content-type", "content-transfer-encoding", "content-disposition"):
        value = _first(headers, name)
        if value is not None and (not value.isascii() or "*" in value):
            return None
    value = _first(headers, "content-type")
    if value is None:
        return default
    content_type = value.partition(";")[0].strip().lower()
    if content_type.count("/") != 1:
        return "text/plain"  # RFC 2045: an invalid type is text/plain
    return content_type


def _leaf(
    headers: list[tuple[str, str]],
    content_type: str,
    raw: bytes,
    start: int,
    end: int,
    strip_line_break: bool,
) -> Part | None:
    """The leaf whose body is RAW[START:END]; STRIP_LINE_BREAK: a part of a
    multipart, whose last line break belongs to the boundary after it."""
    encoding = (_first(headers, "content-transfer-encoding") or "").lower()
    if encoding in _UUENCODED:
        return None
    payload = raw[start:end]
    if strip_line_break:
        for line_break in _LINE_BREAKS:
            if payload.endswith(line_break):
                payload = payload[: -len(line_break)]
                break
    if encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    elif encoding == "base64":
        payload = _decode_base64(b"".join(payload.splitlines()))
    return Part(
        content_type,
        _first(headers, "content-type"),
        _first(headers, "content-disposition"),
        payload,
    )


def _multipart_parts(text: str, raw: bytes, body: int, type_value: str | None) -> list[Part] | None:
    """The leaf parts of a multipart whose body starts at BODY, as the email
    parser splits them at its boundary lines, or None."""
    boundary = _parameter(type_value, "boundary")
    if boundary is None:
        return None
    # Message.get_boundary: unquoted once more, trailing white space dropped.
    boundary = _unquote(boundary).rstrip()
    if not boundary or "\r" in boundary or "\n" in boundary:
        return None  # none, or one no line can match (folded into the quotes)
    lines = _boundary_lines(text, body, "--" + boundary)
    if not lines or lines[0][2]:
        return None  # no part starts: the email package keeps the body as text
    parts: list[Part] = []
    for number, (_start, end, _closing) in enumerate(lines):
        following = lines[number + 1] if number + 1 < len(lines) else None
        if following is not None and following[0] == end:
            return None  # two boundary lines in a row
        part_end = following[0] if following is not None else len(text)
        block = _header_block(text, end, part_end)
        if block is None:
            return None
        headers, part_body = block
        content_type = _checked_content_type(headers, "text/plain")
        if content_type is None or content_type.startswith(("multipart/", "message/")):
            return None
        part = _leaf(headers, content_type, raw, part_body, part_end, strip_line_break=True)
        if part is None:
            return None
        parts.append(part)
        if following is None or following[2]:
            break  # the end of the text, or the closing boundary: the rest is epilogue
    return parts


def _boundary_lines(text: str, start: int, separator: str) -> list[tuple[int, int, bool]]:
    """(start, end, closing) of each line from START that the email parser
    takes for a boundary: one that starts with SEPARATOR, then "--" for
    the closing one, then nothing but spaces and tabs."""
    found = []
    position = text.find(separator, start)
    while position >= 0:
        line = _LINE.match(text, position)
        assert line is not None  # the separator is there
        if position == start or text[position - 1] in "\r\n":
            rest = line.group()[len(separator) :].rstrip("\r\n")
            closing = rest.startswith("--")
            if closing:
                rest = rest[2:]
            if not rest.strip(" \t"):
                found.append((position, line.end(), closing))
        # The next line is the next place a boundary can start (the
        # separator holds no line break): a line of a thousand separators
        # is one search, not a thousand.
        position = text.find(separator, line.end())
    return found


def _header_fields(lines: list[str]) -> list[tuple[str, str]] | None:
    """(name, value) of each field, as compat32's raw_items gives them, or
    None for a header block the email package would read with a defect.

    A field's value is written as compat32's header_source_parse writes it:
    the first line's after the colon, spaces and tabs before it dropped,
    then its continuation lines, line breaks kept but the last."""
    fields: list[tuple[str, str]] = []
    name: str | None = None  # of the field being read
    value_lines: list[str] = []
    for number, line in enumerate(lines):
        if line[0] in " \t":
            if name is None:
                return None  # a continuation of no field
            value_lines.append(line)
            continue
        if name is not None:
            fields.append((name, "".join(value_lines).rstrip("\r\n")))
            name = None
        if line.startswith("From "):
            if number == 0:
                continue  # the envelope line of an mbox or a delivery agent
            return None
        colon = line.find(":")
        if colon <= 0:
            return None  # no name (a "From " line is the only other match)
        name = line[:colon]
        value_lines = [line[colon + 1 :].lstrip(" \t")]
    if name is not None:
        fields.append((name, "".join(value_lines).rstrip("\r\n")))
    return fields


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    # Names of another length are passed over without being lower-cased.
    length = len(name)
    for field, value in fields:
        if len(field) == length and field.lower() == name:
            return value
    return None


def _parameter(value: str | None, wanted: str) -> str | None:
    """Message.get_param(WANTED) of a field's VALUE without RFC 2231
    parameters: the first parameter of that name, unquoted; None when the
    field or the parameter is missing."""
    if value is None:
        return None
    parameters = _parameters(value)
    # decode_params quotes every parameter after the first, get_param
    # unquotes it again.
    candidates = [parameters[0]] + [
        (name, '"' + _quote(_unquote(parameter)) + '"') for name, parameter in parameters[1:]
    ]
    for name, parameter in candidates:
        if name.lower() == wanted:
            return _unquote(parameter)
    return None


def _parameters(value: str) -> list[tuple[str, str]]:
    # email.message._parseparam, then the split into names and values of
    # Message._get_params_preserve.
    rest = ";" + value
    pieces = []
    while rest[:1] == ";":
        rest = rest[1:]
        end = rest.find(";")
        while end > 0 and (rest.count('"', 0, end) - rest.count('\\"', 0, end)) % 2:
            end = rest.find(";", end + 1)
        if end < 0:
            end = len(rest)
        piece = rest[:end]
        if "=" in piece:
            index = piece.index("=")
            piece = piece[:index].strip().lower() + "=" + piece[index + 1 :].strip()
        pieces.append(piece.strip())
        rest = rest[end:]
    parameters = []
    for piece in pieces:
        name, equals, parameter_value = piece.partition("=")
        if equals:
            parameters.append((name.strip(), parameter_value.strip()))
        else:
            parameters.append((piece.strip(), ""))
    return parameters


def _unquote(value: str) -> str:
    # email.utils.unquote
    if len(value) > 1:
        if value.startswith('"') and value.endswith('"'):
            return value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        if value.startswith("<") and value.endswith(">"):
            return value[1:-1]
    return value


def _quote(value: str) -> str:
    # email.utils.quote
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _decode_base64(encoded: bytes) -> bytes:
    """email._encoded_words.decode_b's value: strictly with the padding
    mended, else ignoring what is not base64, else the text as it is."""
    import base64  # here: a one-message filter rarely meets base64 text

    missing = len(encoded) % 4
    padding = b"==="[: 4 - missing] if missing else b""
    try:
        return base64.b64decode(encoded + padding, validate=True)
    except binascii.Error:
        pass
    try:
        return base64.b64decode(encoded, validate=False)
    except binascii.Error:
        pass
    try:
        return base64.b64decode(encoded + b"==", validate=False)
    except binascii.Error:
        return encoded
