"""A message of one text part, read without the email package.

Most mail is one text/plain or text/html part (5,540 of the SpamAssassin
corpora's 6,046 messages). For those, :func:`read_single_part` gives what
``email.message_from_bytes`` (policy compat32) and mail.py's use of it give:
the same header fields, the same content type and charset, the same decoded
payload, by the same rules, written out here for this one shape of message.
Anything else, or anything unusual in the header block (a first line that
continues no field, a ``From`` line past the first, a field with no name,
8-bit bytes in the Content-Type or Content-Transfer-Encoding, RFC 2231
parameters, uuencoded text), returns None and mail.py parses the message
with the email package as before. tests/test_single_part.py checks the two
agree, on made-up messages and on every message of the corpora.

Why: the email package is 7 ms of a one-message filter's start-up (its
modules import socket, random, calendar and more), and its parser a fifth
of a message's cost in bulk (0.07 ms of the SpamAssassin corpora's 0.48 ms
of tokens for a single-part message; 0.01 ms here).
"""

from __future__ import annotations

import binascii
import re

# The email package's own patterns (email/feedparser.py): a line that can
# belong to a header block, and a line break.
_HEADER_LINE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")
_LINE_BREAK_AT_START = re.compile(r"\r\n|\r|\n")
# One line with its line break, split as the email parser splits its input
# (io.StringIO with newline="": \r\n, \r or \n).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# What get_payload(decode=True) decodes as uuencoded text: left to the
# email package.
_UUENCODED = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_TEXT_TYPES = frozenset({"text/plain", "text/html"})


class SinglePart:
    """The parsed message, with the methods of email.message.Message that
    mail.py calls on a text part, giving what they give."""

    __slots__ = ("charset", "content_type", "headers", "payload")

    def __init__(
        self, headers: list[tuple[str, str]], content_type: str, charset: str | None, payload: bytes
    ) -> None:
        self.headers = headers
        self.content_type = content_type
        self.charset = charset
        self.payload = payload

    def raw_items(self) -> list[tuple[str, str]]:
        return self.headers

    def get_content_type(self) -> str:
        return self.content_type

    def get_content_charset(self) -> str | None:
        return self.charset

    def get_filename(self) -> None:
        # mail.py names the file of an attachment only; a text part's is no input.
        return None

    def get_payload(self, decode: bool = False) -> bytes:
        assert decode, "only the decoded payload is kept"
        return self.payload


def read_single_part(raw: bytes) -> SinglePart | None:
    """RAW as a message of one text part, or None where the email package
    must read it (see the module's doc). Never raises on bytes."""
    text = raw.decode("ascii", "surrogateescape")
    header_lines: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        line = _LINE.match(text, position)
        if line is None:  # not reached: _LINE matches at any position before the end
            return None
        value = line.group()
        if not _HEADER_LINE.match(value):
            if _LINE_BREAK_AT_START.match(value):
                position = line.end()  # the blank line that ends the headers
            break
        header_lines.append(value)
        position = line.end()
    headers = _header_fields(header_lines)
    if headers is None:
        return None
    content_type_value = _first(headers, "content-type")
    encoding_value = _first(headers, "content-transfer-encoding")
    if (content_type_value is not None and not content_type_value.isascii()) or (
        encoding_value is not None and not encoding_value.isascii()
    ):
        return None  # compat32 makes a Header object of such a value
    content_type = _content_type(content_type_value)
    if content_type not in _TEXT_TYPES:
        return None  # multipart, message/*, or an attachment alone
    if content_type_value is not None and "*" in content_type_value:
        return None  # perhaps an RFC 2231 parameter
    encoding = (encoding_value or "").lower()
    if encoding in _UUENCODED:
        return None
    payload = raw[position:]
    if encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    elif encoding == "base64":
        payload = _decode_base64(b"".join(payload.splitlines()))
    return SinglePart(headers, content_type, _charset(content_type_value), payload)


def _header_fields(lines: list[str]) -> list[tuple[str, str]] | None:
    """(name, value) of each field, as compat32's raw_items gives them, or
    None for a header block the email package would read with a defect."""
    fields: list[tuple[str, str]] = []
    current: list[str] = []
    for number, line in enumerate(lines):
        if line[0] in " \t":
            if not current:
                return None  # a continuation of no field
            current.append(line)
            continue
        if current:
            fields.append(_field(current))
            current = []
        if line.startswith("From "):
            if number == 0:
                continue  # the envelope line of an mbox or a delivery agent
            return None
        if line.find(":") <= 0:
            return None  # no name (a "From " line is the only other match)
        current = [line]
    if current:
        fields.append(_field(current))
    return fields


def _field(lines: list[str]) -> tuple[str, str]:
    # compat32's header_source_parse.
    name, value = lines[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(lines[1:])
    return name, value.rstrip("\r\n")


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    for field, value in fields:
        if field.lower() == name:
            return value
    return None


def _content_type(value: str | None) -> str:
    # Message.get_content_type: text/plain when missing or not type/subtype.
    if value is None:
        return "text/plain"
    content_type = value.partition(";")[0].strip().lower()
    if content_type.count("/") != 1:
        return "text/plain"
    return content_type


def _charset(content_type_value: str | None) -> str | None:
    """Message.get_content_charset for a Content-Type without RFC 2231
    parameters: the first charset parameter, unquoted, lower-cased; None
    when there is none or it is not ASCII."""
    if content_type_value is None:
        return None
    parameters = _parameters(content_type_value)
    # decode_params quotes every parameter after the first, get_param
    # unquotes it again.
    candidates = [parameters[0]] + [
        (name, '"' + _quote(_unquote(value)) + '"') for name, value in parameters[1:]
    ]
    for name, value in candidates:
        if name.lower() == "charset":
            charset = _unquote(value)
            if not charset.isascii():
                return None
            return charset.lower()
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
