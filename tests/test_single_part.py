"""spamcli/single_part.py reads a message of one text part as the email
package does (compat32): the same header fields, content type, charset and
decoded payload, and mail.extract_fields gives the same fields with it and
without it. Checked on made-up messages that vary what the email package
is particular about, and on every message of the shared corpora (slow).
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
from spamcli.single_part import read_single_part

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
        *("X-Spam-Flag", "body", "X\u00e9", "", " Indented", "From ", "Bad Name", "a\tb"),
    ]
)
CONTENT_TYPES = st.sampled_from(
    [
        *("text/plain", "text/html", "TEXT/HTML", " text/plain ", "text", "text/plain/x"),
        *("multipart/mixed", "message/rfc822", "application/pdf", "", "text/plain\u00e9"),
    ]
)
PARAMETERS = st.sampled_from(
    [
        *("charset=utf-8", 'charset="ISO-8859-1"', "CHARSET=koi8-r", "charset=", "charset"),
        *('charset="a;b"', 'name="x\\"y"; charset=us-ascii', "charset*=utf-8''x", "format=flowed"),
        *("charset='utf-8'", "charset=<utf-8>", 'charset="\\\\"', "charset=caf\u00e9", " ; "),
    ]
)
ENCODINGS = st.sampled_from(
    [
        *("", "7bit", "8bit", "base64", "BASE64", "base64 ", "quoted-printable"),
        *("Quoted-Printable", "x-uuencode", "bogus", "base64\u00e9"),
    ]
)
BODY_WORDS = st.sampled_from(
    ["claim", "prize", "caf\u00e9", "=3D", "=\n", "From me", "\n", "\r\n", "\r", "\n\n", "<b>x</b>"]
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
    if name.lower() == "content-type":
        value = draw(CONTENT_TYPES) + "".join(
            "; " + parameter for parameter in draw(st.lists(PARAMETERS, max_size=3))
        )
    elif name.lower() == "content-transfer-encoding":
        value = draw(ENCODINGS)
    else:
        value = draw(st.sampled_from(["hello", "=?utf-8?q?caf=C3=A9?=", "a@b.example", " x "]))
    return f"{name}:{draw(st.sampled_from(['', ' ', chr(9)]))}{value}"


@st.composite
def single_part_messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(header_lines(), max_size=8))
    head = "".join(line + draw(LINE_BREAKS) for line in lines)
    separator = draw(st.sampled_from(["\n", "\r\n", "\r", "", "not a header\n"]))
    body = "".join(draw(st.lists(BODY_WORDS, max_size=20)))
    encoding = draw(st.sampled_from(["none", "base64", "quoted-printable", "broken base64"]))
    data = body.encode("utf-8")
    if encoding == "base64":
        data = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        data = quopri.encodestring(data)
    elif encoding == "broken base64":
        data = base64.encodebytes(data)[:-3] + b"*\n"
    return head.encode("utf-8", "surrogateescape") + separator.encode() + data


def assert_read_as_the_email_package(raw: bytes) -> None:
    single = read_single_part(raw)
    if single is None:
        return
    message = email.message_from_bytes(raw)
    assert not message.is_multipart()
    assert single.raw_items() == list(message.raw_items())
    assert single.get_content_type() == message.get_content_type()
    assert single.get_content_charset() == message.get_content_charset()
    assert single.get_payload(decode=True) == message.get_payload(decode=True)


def assert_same_fields_with_and_without(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {policy: mail.extract_fields(raw, policy) for policy in HEADER_POLICIES}
    with monkeypatch.context() as patch:
        patch.setattr(mail, "read_single_part", lambda raw: None)
        slow = {policy: mail.extract_fields(raw, policy) for policy in HEADER_POLICIES}
    assert fast == slow


@SETTINGS
@given(raw=single_part_messages())
def test_single_part_made_up_messages_read_as_the_email_package_reads_them(raw: bytes) -> None:
    assert_read_as_the_email_package(raw)


@SETTINGS
@given(raw=st.one_of(single_part_messages(), hostile_mail()))
def test_single_part_fields_are_the_same_without_it(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_fields_with_and_without(raw, monkeypatch)


def test_single_part_reads_the_common_message_and_leaves_the_rest() -> None:
    plain = b"From: a@b.example\r\nSubject: hi\r\n\r\nHello there.\r\n"
    single = read_single_part(plain)
    assert single is not None
    assert single.raw_items() == [("From", "a@b.example"), ("Subject", "hi")]
    assert single.get_payload(decode=True) == b"Hello there.\r\n"
    encoded = (
        b'Content-Type: text/html; charset="UTF-8"\n'
        b"Content-Transfer-Encoding: base64\n\nPGI+aGk8L2I+\n"
    )
    single = read_single_part(encoded)
    assert single is not None
    assert (single.get_content_type(), single.get_content_charset()) == ("text/html", "utf-8")
    assert single.get_payload(decode=True) == b"<b>hi</b>"
    # What the email package reads: other types, defects, RFC 2231, uuencoding.
    for raw in (
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n\nbody\n--x--\n",
        b"Content-Type: image/png\n\n....",
        b" continued\nSubject: hi\n\nbody",
        b"Subject: hi\nFrom someone\n\nbody",
        b"Content-Type: text/plain; charset*=utf-8''x\n\nbody",
        b"Content-Transfer-Encoding: x-uuencode\n\nbody",
        b"Content-Type: text/plain; charset=caf\xc3\xa9\n\nbody",
    ):
        assert read_single_part(raw) is None, raw


@pytest.mark.slow
@pytest.mark.parametrize("collection", ["spamassassin", "csdmc2010"])
def test_single_part_every_corpus_message_reads_the_same(
    collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = sorted((CORPORA_DIR / collection).glob("*.tar.bz2"))
    if not archives:
        pytest.skip(f"{CORPORA_DIR / collection} holds no archives: the shared corpora")
    read = single = 0
    for archive in archives:
        for item in corpus.iter_messages(archive):
            if isinstance(item, corpus.ReadFailure):
                continue
            read += 1
            single += read_single_part(item.raw) is not None
            assert_read_as_the_email_package(item.raw)
            assert_same_fields_with_and_without(item.raw, monkeypatch)
    # Most mail is one text part: 5,539 of SpamAssassin's 6,046, 1,556 of
    # CSDMC2010's 1,982.
    assert read > 1900
    assert single > read * 0.75
