"""Hypothesis strategies for broken mail: arbitrary bytes, and generated
messages mutated the ways real mail breaks (cut headers, lost boundaries,
corrupt encodings, lying charsets, stray bytes).

Shared by ``tests/test_properties.py`` and the longer run in
``bench/fuzz.py``, so both search the same space.
"""

from __future__ import annotations

import base64
import quopri

from hypothesis import strategies as st

CHARSETS = (
    "utf-8",
    "iso-8859-1",
    "us-ascii",
    "utf-16",
    "utf-32",
    "shift_jis",
    "gb2312",
    "koi8-r",
    "x-unknown",
    "unicode-escape",
    "idna",
    "punycode",
    "",
    '"utf-8',
    "utf-8*en",
)
ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus")
TEXT_TYPES = ("text/plain", "text/html", "application/octet-stream", "image/png", "message/rfc822")
WORDS = st.sampled_from(
    [
        *("claim", "your", "prize", "now", "meeting", "agenda", "cash", "=?utf-8?b?cHJpemU=?="),
        *("<b>bold</b>", "<a", "href='http://x.example/a?b=c'>link</a>"),
        *("caf\u00e9", "\u20ac", "\u0000", "\ufeff"),
    ]
)


@st.composite
def part_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A part's encoding and body, the body encoded as it declares, or not."""
    text = " ".join(draw(st.lists(WORDS, max_size=30)))
    charset = draw(st.sampled_from(CHARSETS))
    try:
        data = text.encode(charset or "utf-8")
    except (LookupError, UnicodeError):
        data = text.encode("utf-8", errors="surrogatepass")
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding == "base64":
        data = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        data = quopri.encodestring(data)
    return encoding, (
        f"Content-Type: {draw(st.sampled_from(TEXT_TYPES))}; charset={charset}\n"
        f"Content-Transfer-Encoding: {encoding}\n\n"
    ).encode() + data


@st.composite
def generated_messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A plausible message: headers, then one part or a multipart of parts."""
    headers = (
        b"From: "
        + draw(st.sampled_from([b"Alice <alice@example.org>", b"=?utf-8?q?Bob?= <b@x>", b"<>"]))
        + b"\nSubject: "
        + " ".join(draw(st.lists(WORDS, max_size=8))).encode("utf-8", "surrogatepass")
        + b"\nMIME-Version: 1.0\n"
    )
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from([b"sep", b"=_b", b"", b'"quoted"', b"a b"]))
        children = draw(st.lists(generated_messages(depth=depth + 1), min_size=0, max_size=4))
        body = b"".join(b"--" + boundary + b"\n" + child for child in children)
        return (
            headers
            + b"Content-Type: multipart/"
            + draw(st.sampled_from([b"mixed", b"alternative", b"related", b"digest"]))
            + b'; boundary="'
            + boundary
            + b'"\n\n'
            + body
            + b"--"
            + boundary
            + b"--\n"
        )
    _, part = draw(part_bodies())
    return headers + part


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A generated message with up to five mutations applied in turn."""
    message = bytearray(draw(generated_messages()))
    for _ in range(draw(st.integers(0, 5))):
        mutation = draw(
            st.sampled_from(
                ["cut", "drop-boundaries", "corrupt", "insert", "drop-blank-line", "swap-charset"]
            )
        )
        size = len(message)
        if mutation == "cut" and size:
            del message[draw(st.integers(0, size - 1)) :]
        elif mutation == "drop-boundaries":
            message = bytearray(
                b"\n".join(line for line in message.split(b"\n") if not line.startswith(b"--"))
            )
        elif mutation == "corrupt" and size:
            position = draw(st.integers(0, size - 1))
            message[position : position + 1] = draw(st.binary(min_size=1, max_size=4))
        elif mutation == "insert":
            position = draw(st.integers(0, size))
            message[position:position] = draw(
                st.sampled_from(
                    [b"\x00", b"\r", b"\n\n", b"=", b"=?", b"?=", b"\xff\xfe", b"\n--sep\n", b"<"]
                )
            )
        elif mutation == "drop-blank-line":
            message = bytearray(message.replace(b"\n\n", b"\n", 1))
        elif mutation == "swap-charset":
            message = bytearray(
                message.replace(
                    b"charset=", b"charset=" + draw(st.sampled_from(CHARSETS)).encode() + b"x", 1
                )
            )
    return bytes(message)


def hostile_mail() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, generated messages and mutated ones, in one strategy."""
    return st.one_of(st.binary(max_size=4096), generated_messages(), mutated_messages())
