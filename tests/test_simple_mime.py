"""spamcli/simple_mime.py reads a message of simple MIME structure as the
email package does (compat32): the same header fields, and for each leaf
part the same content type, charset, file name and decoded payload; and
mail.extract_fields gives the same fields with it and without it. Checked
on made-up messages that vary what the email package is particular about
(single parts and multiparts), and on every message of the corpora (slow).
"""

from __future__ import annotations

import base64
import email
import quopri
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_strategies import hostile_mail

from spamcli import corpus, mail
from spamcli.config import HEADER_POLICIES
from spamcli.simple_mime import read_simple

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CORPORA_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora"

LINE_BREAKS = st.sampled_from(["\n", "\r\n", "\r"])
NAMES = st.sampled_from(
    [
        *("Subject", "From", "To", "Received", "X-Mailer", "Content-Type", "content-type"),
        *("Content-Transfer-Encoding", "CONTENT-TRANSFER-ENCODING", "MIME-Version"),
        *("Content-Disposition", "content-disposition"),
        *("X-Spam-Flag", "body", "X\u00e9", "", " Indented", "From ", "Bad Name", "a\tb"),
    ]
)
CONTENT_TYPES = st.sampled_from(
    [
        *("text/plain", "text/html", "TEXT/HTML", " text/plain ", "text", "text/plain/x"),
        *("multipart/mixed", "message/rfc822", "application/pdf", "", "text/plain\u00e9"),
        *("attachment", "inline", "image/png", "text/enriched"),
    ]
)
PARAMETERS = st.sampled_from(
    [
        *("charset=utf-8", 'charset="ISO-8859-1"', "CHARSET=koi8-r", "charset=", "charset"),
        *('charset="a;b"', 'name="x\\"y"; charset=us-ascii', "charset*=utf-8''x", "format=flowed"),
        *("charset='utf-8'", "charset=<utf-8>", 'charset="\\\\"', "charset=caf\u00e9", " ; "),
        *('name="a.pdf"', "name=b.zip ", 'filename=" c.doc "', "filename=<d>", 'name=""'),
    ]
)
ENCODINGS = st.sampled_from(
    [
        *("", "7bit", "8bit", "base64", "BASE64", "base64 ", "quoted-printable"),
        *("Quoted-Printable", "x-uuencode", "bogus", "base64\u00e9"),
    ]
)
BODY_WORDS = st.sampled_from(
    [
        *("claim", "prize", "caf\u00e9", "=3D", "=\n", "From me", "\n", "\r\n", "\r"),
        *("\n\n", "<b>x</b>", "\n--b\n", "\n--b--\n", "--b"),
    ]
)


@st.composite
def header_lines(draw: st.DrawFn) -> str:
    """One header line: a field, a continuation, or something that is neither."""
    kind = draw(st.sampled_from(["field", "field", "field", "continuation", "odd"]))
    if kind == "continuation":
        return draw(st.sampled_from([" more", "\tfolded text", " "]))
    if kind == "odd":
        return draw(st.sampled_from([": no name", "From sender Mon Jan 1", "no colon here", ""]))
    name = draw(NAMES)
    if name.lower() in ("content-type", "content-disposition"):
        value = draw(CONTENT_TYPES) + "".join(
            "; " + parameter for parameter in draw(st.lists(PARAMETERS, max_size=3))
        )
    elif name.lower() == "content-transfer-encoding":
        value = draw(ENCODINGS)
    else:
        value = draw(st.sampled_from(["hello", "=?utf-8?q?caf=C3=A9?=", "a@b.example", " x "]))
    return f"{name}:{draw(st.sampled_from(['', ' ', chr(9)]))}{value}"


def encoded_body(draw: st.DrawFn) -> bytes:
    body = "".join(draw(st.lists(BODY_WORDS, max_size=20)))
    encoding = draw(st.sampled_from(["none", "base64", "quoted-printable", "broken base64"]))
    data = body.encode("utf-8")
    if encoding == "base64":
        data = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        data = quopri.encodestring(data)
    elif encoding == "broken base64":
        data = base64.encodebytes(data)[:-3] + b"*\n"
    return data


def header_block(draw: st.DrawFn, *extra: str) -> bytes:
    lines = draw(st.permutations([*draw(st.lists(header_lines(), max_size=6)), *extra]))
    head = "".join(line + draw(LINE_BREAKS) for line in lines)
    separator = draw(st.sampled_from(["\n", "\r\n", "\r", "", "not a header\n"]))
    return (head + separator).encode("utf-8", "surrogateescape")


@st.composite
def single_part_messages(draw: st.DrawFn) -> bytes:
    return header_block(draw) + encoded_body(draw)


@st.composite
def multipart_messages(draw: st.DrawFn) -> bytes:
    """A multipart of boundary "b" (quoted or not) whose parts are drawn as
    single-part messages are, with what the email parser is particular
    about: white space after a boundary, a closing line or none, a
    preamble, an epilogue, boundaries in a row, a nested multipart, a
    digest, a line that only starts like a boundary."""
    kind = draw(st.sampled_from(["mixed", "alternative", "digest"]))
    parameter = draw(st.sampled_from(['boundary="b"', "boundary=b", 'boundary="b "', "x=1"]))
    pieces = [
        header_block(draw, f"Content-Type: multipart/{kind}; {parameter}"),
        draw(st.sampled_from([b"", b"preamble\n", b"--bx\n"])),
    ]
    for _ in range(draw(st.integers(0, 4))):
        pieces.append(draw(st.sampled_from([b"--b\n", b"--b \t\r\n", b"--b\r", b"--b--\n"])))
        if draw(st.booleans()):
            nested = draw(st.sampled_from(["", "Content-Type: multipart/mixed; boundary=c"]))
            pieces.append(header_block(draw, *([nested] if nested else [])))
            pieces.append(encoded_body(draw))
    if draw(st.booleans()):
        pieces.append(draw(st.sampled_from([b"--b--", b"--b--\n", b"--b-- \n"])))
        pieces.append(draw(st.sampled_from([b"", b"epilogue\n", b"--b\nafter\n"])))
    return b"".join(pieces)


def assert_read_as_the_email_package(raw: bytes) -> bool:
    """Whether RAW is read here; if it is, that it is read as the email
    package reads it."""
    simple = read_simple(raw)
    if simple is None:
        return False
    message = email.message_from_bytes(raw)
    assert simple.raw_items() == list(message.raw_items())
    leaves = message.get_payload() if message.is_multipart() else [message]
    assert len(simple.parts) == len(leaves)
    for part, leaf in zip(simple.parts, leaves, strict=True):
        assert not leaf.is_multipart()
        assert part.get_content_type() == leaf.get_content_type()
        assert part.get_content_charset() == leaf.get_content_charset()
        assert part.get_filename() == leaf.get_filename()
        assert part.get_payload(decode=True) == leaf.get_payload(decode=True)
    return True


def assert_same_fields_with_and_without(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {policy: mail.extract_fields(raw, policy) for policy in HEADER_POLICIES}
    with monkeypatch.context() as patch:
        patch.setattr(mail, "read_simple", lambda raw: None)
        slow = {policy: mail.extract_fields(raw, policy) for policy in HEADER_POLICIES}
    assert fast == slow


@SETTINGS
@given(raw=st.one_of(single_part_messages(), multipart_messages()))
def test_simple_mime_made_up_messages_read_as_the_email_package_reads_them(raw: bytes) -> None:
    assert_read_as_the_email_package(raw)


@SETTINGS
@given(raw=st.one_of(single_part_messages(), multipart_messages(), hostile_mail()))
def test_simple_mime_fields_are_the_same_without_it(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_fields_with_and_without(raw, monkeypatch)


def test_simple_mime_made_up_messages_are_often_read_here() -> None:
    # The properties above check something only for messages read here.
    read = {"single": 0, "multipart": 0}

    @settings(max_examples=300, deadline=None, database=None)
    @given(single=single_part_messages(), multipart=multipart_messages())
    def count(single: bytes, multipart: bytes) -> None:
        read["single"] += assert_read_as_the_email_package(single)
        read["multipart"] += assert_read_as_the_email_package(multipart)

    count()
    assert read["single"] > 100 and read["multipart"] > 30, read


def test_simple_mime_reads_the_common_message_and_leaves_the_rest() -> None:
    plain = b"From: a@b.example\r\nSubject: hi\r\n\r\nHello there.\r\n"
    simple = read_simple(plain)
    assert simple is not None
    assert simple.raw_items() == [("From", "a@b.example"), ("Subject", "hi")]
    assert [part.get_payload(decode=True) for part in simple.parts] == [b"Hello there.\r\n"]
    alternative = (
        b'Content-Type: multipart/alternative; boundary="=_b"\n\npreamble\n'
        b"--=_b\nContent-Type: text/plain\n\nhi\n"
        b'--=_b\nContent-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: base64\n'
        b"\nPGI+aGk8L2I+\n"
        b"--=_b\nContent-Type: application/pdf; name=a.pdf\n\n%PDF\n--=_b--\nepilogue\n"
    )
    simple = read_simple(alternative)
    assert simple is not None
    assert [
        (part.get_content_type(), part.get_content_charset(), part.get_filename())
        for part in simple.parts
    ] == [
        ("text/plain", None, None),
        ("text/html", "utf-8", None),
        ("application/pdf", None, "a.pdf"),
    ]
    assert [part.get_payload(decode=True) for part in simple.parts] == [
        b"hi",
        b"<b>hi</b>",
        b"%PDF",
    ]
    # What the email package reads: nesting, defects, RFC 2231, uuencoding.
    for raw in (
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: multipart/mixed\n\n",
        b"Content-Type: multipart/mixed; boundary=x\n\nno boundary line\n",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x\n\nbody\n",
        b'Content-Type: multipart/mixed; boundary="x\n y"\n\n--x\n y\n\nbody\n',
        b"Content-Type: multipart/mixed\n\n--x\n\nbody\n",
        b"Content-Type: multipart/digest; boundary=x\n\n--x\n\nSubject: a\n\nb\n",
        b"Content-Type: message/rfc822\n\nSubject: a\n\nb\n",
        b" continued\nSubject: hi\n\nbody",
        b"Subject: hi\nFrom someone\n\nbody",
        b"Content-Type: text/plain; charset*=utf-8''x\n\nbody",
        b"Content-Transfer-Encoding: x-uuencode\n\nbody",
        b"Content-Type: text/plain; charset=caf\xc3\xa9\n\nbody",
    ):
        assert read_simple(raw) is None, raw


@pytest.mark.slow
@pytest.mark.parametrize("collection", ["spamassassin", "csdmc2010"])
def test_simple_mime_every_corpus_message_reads_the_same(
    collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = sorted((CORPORA_DIR / collection).glob("*.tar.bz2"))
    if not archives:
        pytest.skip(f"{CORPORA_DIR / collection} holds no archives: the shared corpora")
    read = simple = 0
    for archive in archives:
        for item in corpus.iter_messages(archive):
            if isinstance(item, corpus.ReadFailure):
                continue
            read += 1
            simple += assert_read_as_the_email_package(item.raw)
            assert_same_fields_with_and_without(item.raw, monkeypatch)
    # All but a few: 5,996 of SpamAssassin's 6,046 messages, 1,975 of
    # CSDMC2010's 1,982.
    assert read > 1900
    assert simple > read * 0.98
