"""Tests of spamcli.mail: raw message bytes → the text fields the model sees.

The messages under tests/messages/ are written by hand for these tests; the
ones that need exact 8-bit bytes are built inline, so the bytes are visible.
"""

from __future__ import annotations

import email
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli import config, mail
from spamcli.mail import extract_fields, message_id
from spamcli.tokens import message_tokens

MESSAGES_DIR = Path(__file__).parent / "messages"
FIXTURE_NAMES = sorted(path.name for path in MESSAGES_DIR.glob("*.eml"))

# What a spam filter adds at the top of a message it has scored.
SPAMCLI_HEADERS = (
    b"X-Spam-Flag: YES\nX-Spam-Score: 0.97\nX-Spam-Status: Yes, score=0.97\n\tmodel=default\n"
)


def read_message(name: str) -> bytes:
    return (MESSAGES_DIR / name).read_bytes()


# Fields of the sender's words and the body, without the MIME headers that
# the content policy also keeps.
WORD_FIELDS = ("subject", "from", "body", "url", "attachment")


def words_only(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(field, text) for field, text in fields if field in WORD_FIELDS]


def fields_named(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [text for field, text in fields if field == name]


def assert_valid_fields(fields: object) -> None:
    """The contract every result keeps, whatever the input."""
    assert isinstance(fields, list)
    for pair in fields:
        assert isinstance(pair, tuple)
        assert len(pair) == 2
        field, text = pair
        assert isinstance(field, str)
        assert isinstance(text, str)
        assert field
        assert text.strip()
        assert "\x00" not in text
        # Valid Unicode: no lone surrogates left over from 8-bit bytes.
        field.encode("utf-8")
        text.encode("utf-8")
    assert sum(len(text) for _, text in fields) <= config.MAX_TEXT_CHARACTERS


# --- header policies ---------------------------------------------------------


def test_mail_plain_text_gives_subject_sender_and_body() -> None:
    fields = words_only(extract_fields(read_message("plain.eml")))

    assert fields == [
        ("from", "John Doe mail.example.com"),
        ("subject", "Lunch on Thursday?"),
        ("body", "Hi Alice,\n\nShall we meet at the noodle bar at noon?\n\nJohn"),
    ]


def test_mail_content_policy_leaves_out_mailbox_and_relay_headers() -> None:
    fields = extract_fields(read_message("plain.eml"), headers="content")

    all_text = " ".join(text for _, text in fields)
    for leaked in ("alice@example.org", "relay.example.net", "bob@example.org", "lists"):
        assert leaked not in all_text
    assert {field for field, _ in fields} == {
        "from",
        "subject",
        "body",
        "mime-version",
        "content-type",
    }


def test_mail_content_policy_keeps_the_senders_software_headers() -> None:
    raw = (
        b"From: Ann <ann@mail.example.com>\nReply-To: Sales <sales@shop.example.com>\n"
        b"X-Mailer: Bulk Sender 3.1\nMessage-ID: <1@relay.example.net>\n"
        b"Date: Mon, 2 Sep 2002 10:00:00 +0000\nSubject: hi\n\nbody\n"
    )

    fields = extract_fields(raw, headers="content")

    assert ("reply-to", "Sales shop.example.com") in fields
    assert ("x-mailer", "Bulk Sender 3.1") in fields
    assert {field for field, _ in fields}.isdisjoint({"message-id", "date"})


def test_mail_origin_policy_adds_the_earliest_relay_without_recipient_or_date() -> None:
    raw = (
        b"Received: from mx.example.org by store.example.org; Tue, 3 Sep 2024 10:00:02 +0000\n"
        b"Received: from laptop (dsl-7.example.net [192.0.2.7])\n"
        b"\tby smtp.example.net with ESMTPSA id 1A2B\n"
        b"\tfor <alice@example.org>; Tue, 3 Sep 2024 10:00:00 +0000\n"
        b"From: Ann <ann@mail.example.com>\nSubject: hi\nX-Spam-Flag: YES\n\nbody\n"
    )

    origin = extract_fields(raw, headers="origin")

    # The content policy's fields, and the last Received field (the first
    # hop), unfolded, up to its recipient.
    assert [pair for pair in origin if pair[0] != "received"] == extract_fields(raw, "content")
    assert fields_named(origin, "received") == [
        "from laptop (dsl-7.example.net [192.0.2.7]) by smtp.example.net with ESMTPSA id 1A2B"
    ]
    assert "received:dsl" in message_tokens(raw, "origin").split()


@pytest.mark.parametrize(
    ("received", "kept"),
    [
        (b"from a.example by b.example; Tue, 3 Sep 2024", "from a.example by b.example"),
        (b"by b.example (Postfix, from uid 1) id 9D", "by b.example (Postfix, from uid 1) id 9D"),
        (b"from mail.for.example by b.example FOR <x@y>", "from mail.for.example by b.example"),
        (b"; Tue, 3 Sep 2024", None),
    ],
)  # fmt: skip
def test_mail_origin_policy_cuts_the_relay_at_its_recipient_or_date(
    received: bytes, kept: str | None
) -> None:
    raw = b"Received: " + received + b"\nSubject: hi\n\nbody\n"

    assert fields_named(extract_fields(raw, "origin"), "received") == ([kept] if kept else [])


def test_mail_origin_policy_without_received_is_the_content_policy() -> None:
    raw = read_message("plain.eml").replace(b"Received:", b"X-Received:")

    assert extract_fields(raw, "origin") == extract_fields(raw, "content")


def test_mail_all_policy_keeps_every_header_in_order() -> None:
    fields = extract_fields(read_message("plain.eml"), headers="all")

    assert [field for field, _ in fields] == [
        "return-path",
        "received",
        "delivered-to",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "list-id",
        "mime-version",
        "content-type",
        "body",
    ]
    assert ("from", '"John Doe" <john@mail.example.com>') in fields
    # Folded header lines are unfolded into one line.
    assert fields_named(fields, "received") == [
        (
            "from relay.example.net (relay.example.net [192.0.2.7]) by mx.example.org"
            " with ESMTP id 12345 for <alice@example.org>; Tue, 3 Sep 2024 10:00:00 +0000"
        )
    ]
    assert fields_named(fields, "subject") == ["Lunch on Thursday?"]


@pytest.mark.parametrize("policy", config.HEADER_POLICIES)
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_mail_spamcli_headers_do_not_change_the_fields(name: str, policy: str) -> None:
    original = read_message(name)

    filtered = SPAMCLI_HEADERS + original

    assert extract_fields(filtered, headers=policy) == extract_fields(original, headers=policy)


@pytest.mark.parametrize("policy", config.HEADER_POLICIES)
def test_mail_spamcli_headers_are_skipped_in_any_case_and_place(policy: str) -> None:
    original = b"Subject: hello\nFrom: a@example.com\n\nbody text\n"
    filtered = (
        b"Subject: hello\nx-spam-score: 0.1\nFrom: a@example.com\nX-SPAM-FLAG: NO\n\nbody text\n"
    )

    assert extract_fields(filtered, headers=policy) == extract_fields(original, headers=policy)


def test_mail_unknown_policy_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown header policy 'everything'"):
        extract_fields(b"Subject: hi\n\nbody", headers="everything")


@pytest.mark.parametrize(
    ("from_header", "expected"),
    [
        (b'"John Doe" <john@mail.example.com>', "John Doe mail.example.com"),
        (b"John Doe <john@MAIL.Example.com>", "John Doe mail.example.com"),
        (b"john@mail.example.com", "mail.example.com"),
        (b"john@mail.example.com (John Doe)", "John Doe mail.example.com"),
        (b"John Doe", "John Doe"),
        (b"=?utf-8?q?J=C3=B6rg?= <joerg@example.de>", "Jörg example.de"),
    ],
)
def test_mail_sender_is_display_name_and_domain(from_header: bytes, expected: str) -> None:
    fields = extract_fields(b"From: " + from_header + b"\n\nbody\n")

    assert fields_named(fields, "from") == [expected]


def test_mail_encoded_subject_and_sender_name_are_decoded() -> None:
    fields = extract_fields(read_message("encoded_headers.eml"))

    assert fields_named(fields, "subject") == ["Grüße aus Köln und café au lait"]
    assert fields_named(fields, "from") == ["Jörg Müller post.example.de"]


def test_mail_broken_encoded_word_keeps_the_raw_text() -> None:
    fields = extract_fields(b"Subject: =?utf-8?b?not base64!?= offer\n\nbody\n")

    assert fields_named(fields, "subject") == ["=?utf-8?b?not base64!?= offer"]


def test_mail_8bit_header_bytes_are_decoded() -> None:
    raw = (
        b"From: J\xc3\xb6rg <joerg@example.de>\n"  # UTF-8
        b"Subject: Caf\xe9 sp\xe9cial \x93today\x94\n"  # cp1252
        b"\nbody\n"
    )

    fields = extract_fields(raw)

    assert fields_named(fields, "from") == ["Jörg example.de"]
    assert fields_named(fields, "subject") == ["Café spécial \u201ctoday\u201d"]


def test_mail_header_line_without_colon_keeps_its_text() -> None:
    raw = b"Subject: Before the break\nthis line has no colon\nX-Note: after\n\nBody text\n"

    fields = extract_fields(raw)

    # The parser ends the header block at the bad line; nothing is lost.
    assert fields_named(fields, "subject") == ["Before the break"]
    [body] = fields_named(fields, "body")
    assert "this line has no colon" in body
    assert "Body text" in body


def test_mail_first_subject_wins_under_content_policy() -> None:
    raw = b"Subject: first\nSubject: second\n\nbody\n"

    assert fields_named(extract_fields(raw), "subject") == ["first"]
    assert fields_named(extract_fields(raw, headers="all"), "subject") == ["first", "second"]


# --- bodies --------------------------------------------------------------------


def test_mail_multipart_alternative_gives_both_bodies() -> None:
    fields = words_only(extract_fields(read_message("alternative.eml")))

    assert fields == [
        ("from", "Newsletter shop.example.com"),
        ("subject", "Autumn sale"),
        ("body", "Everything half price this week."),
        ("body", "Everything half price this week. Shop now"),
        ("url", "shop.example.com/sale"),
    ]


def test_mail_html_drops_script_and_style_and_unescapes_entities() -> None:
    fields = extract_fields(read_message("html_only.eml"))

    [body] = fields_named(fields, "body")
    assert "script-variable-text" not in body
    assert "style-rule-text" not in body
    assert "display" not in body
    assert "<" not in body.replace("<now>", "")
    assert "Fish & chips été €5 <now>" in body
    assert body.startswith("Claim your prize")


def test_mail_html_inline_tags_join_words_and_block_tags_separate_them() -> None:
    [body] = fields_named(extract_fields(read_message("html_only.eml")), "body")

    assert "Viagra for free" in body
    assert "Cash prize" in body


def test_mail_html_links_become_url_fields_of_host_and_path() -> None:
    fields = extract_fields(read_message("html_only.eml"))

    # Host lowercased, no port, user, query or fragment; the same link with
    # another tracking id counts once; relative, mailto: and cid: links have
    # no host and give no field.
    assert fields_named(fields, "url") == [
        "claim.example.net/win/now.php",
        "images.example.org/pixel.gif",
    ]
    # The link is not in the visible text; its anchor text is.
    [body] = fields_named(fields, "body")
    assert "claim.example.net" not in body
    assert "Click here" in body


def test_mail_plain_text_urls_stay_in_the_body() -> None:
    raw = b"Subject: s\n\nVisit http://www.example.com/offer today\n"

    fields = extract_fields(raw)

    assert fields_named(fields, "url") == []
    assert fields_named(fields, "body") == ["Visit http://www.example.com/offer today"]


def test_mail_unclosed_script_hides_the_rest_of_the_html() -> None:
    raw = b"Content-Type: text/html\n\n<p>Visible</p><script>var hidden = 1;"

    assert fields_named(extract_fields(raw), "body") == ["Visible"]


def test_mail_base64_body_is_decoded() -> None:
    fields = extract_fields(read_message("base64_body.eml"))

    assert fields_named(fields, "body") == [
        "Grüße from the base64 body.\nSecond line, with a euro: €10."
    ]


def test_mail_quoted_printable_body_is_decoded() -> None:
    fields = extract_fields(read_message("quoted_printable.eml"))

    assert fields_named(fields, "body") == [
        (
            "Price: €20 for a café crème, a line that is long enough to need a soft line break.\n"
            "Equals sign: 1 + 1 = 2"
        )
    ]


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        pytest.param(
            b"iso-8859-1", b"Caf\xe9 cr\xe8me at 20\xb0C", "Café crème at 20°C", id="latin-1"
        ),
        pytest.param(
            b"windows-1252",
            b"\x93Quoted\x94 price: \x80 5 \x96 it\x92s cheap",
            "\u201cQuoted\u201d price: € 5 \u2013 it\u2019s cheap",
            id="cp1252",
        ),
        # Declared Latin-1, written with Windows curly quotes and euro sign.
        pytest.param(b"iso-8859-1", b"\x93\x80 9\x94", "\u201c€ 9\u201d", id="latin-1-as-cp1252"),
        pytest.param(
            b"utf-8", b"Stra\xc3\x9fe \xe2\x82\xac \xe6\x97\xa5", "Straße € 日", id="utf-8"
        ),
        pytest.param(b'"x-nonsense"', b"na\xc3\xafve \xe2\x82\xac", "naïve €", id="unknown-utf-8"),
        pytest.param(b"x-nonsense", b"na\xefve \x80", "naïve €", id="unknown-cp1252"),
        pytest.param(b"utf-8", b"Caf\xe9 au lait", "Café au lait", id="lying-utf-8"),
        pytest.param(b"us-ascii", b"\xe2\x82\xac 5", "€ 5", id="lying-ascii"),
        pytest.param(
            b"unicode-escape", b"back\\u0041slash", "back\\u0041slash", id="refused-codec"
        ),
        pytest.param(b"punycode", b"bcher-kva", "bcher-kva", id="refused-punycode"),
    ],
)
def test_mail_body_charset_is_decoded(charset: bytes, body: bytes, expected: str) -> None:
    raw = b"Content-Type: text/plain; charset=" + charset + b"\n\n" + body

    assert fields_named(extract_fields(raw), "body") == [expected]


def test_mail_undeclared_charset_is_guessed() -> None:
    assert fields_named(extract_fields(b"Subject: s\n\n\xe2\x82\xac 5"), "body") == ["€ 5"]
    assert fields_named(extract_fields(b"Subject: s\n\n\x80 5"), "body") == ["€ 5"]


def test_mail_attachment_gives_type_and_file_name() -> None:
    fields = extract_fields(read_message("attachment.eml"))

    assert fields_named(fields, "body") == ["Please find your invoice attached."]
    assert fields_named(fields, "attachment") == [
        "application/pdf invoice.pdf",
        "application/zip résumé.zip",  # RFC 2231 encoded file name
        "image/png",  # no file name
    ]
    # The attachment's content is never decoded into text.
    assert "PDF" not in " ".join(text for _, text in fields)


def test_mail_encoded_attachment_file_name_is_decoded() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        b'Content-Type: application/octet-stream; name="=?utf-8?q?Rechnung_M=C3=A4rz.exe?="\n\n'
        b"MZ\n--b--\n"
    )

    assert fields_named(extract_fields(raw), "attachment") == [
        "application/octet-stream Rechnung März.exe"
    ]


def test_mail_missing_closing_boundary_keeps_every_part() -> None:
    fields = extract_fields(read_message("missing_close_boundary.eml"))

    assert fields_named(fields, "body") == [
        "First part survives.",
        "Second part survives too, though the closing boundary never comes.",
    ]


@pytest.mark.parametrize(
    "content_type",
    [b"multipart/mixed", b'multipart/mixed; boundary="never-used"'],
    ids=["no-boundary-parameter", "boundary-never-appears"],
)
def test_mail_multipart_without_usable_boundary_is_read_as_text(content_type: bytes) -> None:
    raw = b"Content-Type: " + content_type + b"\n\n--other\n\nThe words are still here.\n"

    [body] = fields_named(extract_fields(raw), "body")

    assert "The words are still here." in body


def test_mail_message_without_body_gives_headers_only() -> None:
    assert extract_fields(read_message("no_body.eml")) == [
        ("from", "example.com"),
        ("subject", "Only headers"),
    ]


def test_mail_empty_input_gives_no_fields() -> None:
    assert extract_fields(read_message("empty.eml")) == []
    assert extract_fields(b"", headers="all") == []


def test_mail_nul_bytes_become_spaces() -> None:
    raw = b"Subject: nul\x00inside\n\nbefore\x00after\n"

    fields = extract_fields(raw)

    assert fields == [("subject", "nul inside"), ("body", "before after")]


def test_mail_binary_input_gives_text() -> None:
    raw = bytes(range(256)) * 8

    fields = extract_fields(raw)

    assert_valid_fields(fields)
    assert fields_named(fields, "body")


def test_mail_deeply_nested_multipart_is_cheap_and_does_not_raise() -> None:
    # Nesting costs the parser depth squared; deeper than the limit is cut.
    raw = b"Subject: deep\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level)
        for level in range(5_000)
    )

    start = time.perf_counter()
    fields = extract_fields(raw)
    elapsed_seconds = time.perf_counter() - start

    assert fields_named(fields, "subject") == ["deep"]
    # Loose enough for a loaded machine; the quadratic parse took seconds.
    assert elapsed_seconds < 2.0


# --- limits ------------------------------------------------------------------


def test_mail_text_stops_at_the_character_budget() -> None:
    raw = b"Subject: long\n\n" + b"word " * config.MAX_TEXT_CHARACTERS + b"\n"
    attachment_after_budget = b"Content-Type: application/pdf\n\n%PDF"

    fields = extract_fields(raw + attachment_after_budget)

    assert sum(len(text) for _, text in fields) == config.MAX_TEXT_CHARACTERS
    assert fields[-1][0] == "body"
    assert fields[-1][1].startswith("word word")


def _message_with_attachment_before_text(attachment_bytes: int) -> bytes:
    base64_line = b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n"
    return (
        b"Subject: big\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\n"
        b'Content-Type: application/pdf; name="big.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\n"
        + base64_line * (attachment_bytes // len(base64_line))
        + b"--b\nContent-Type: text/plain\n\nText after the attachment.\n--b--\n"
    )


def test_mail_only_the_first_max_message_bytes_are_parsed() -> None:
    small = extract_fields(_message_with_attachment_before_text(10_000))
    huge = extract_fields(_message_with_attachment_before_text(config.MAX_MESSAGE_BYTES))

    assert fields_named(small, "body") == ["Text after the attachment."]
    assert fields_named(huge, "body") == []
    assert fields_named(huge, "attachment") == ["application/pdf big.pdf"]


def test_mail_50_megabyte_attachment_is_cheap() -> None:
    raw = _message_with_attachment_before_text(50_000_000)

    start = time.perf_counter()
    fields = words_only(extract_fields(raw))
    elapsed_seconds = time.perf_counter() - start

    assert fields == [("subject", "big"), ("attachment", "application/pdf big.pdf")]
    # Loose enough for a loaded machine; the quadratic parse took seconds.
    assert elapsed_seconds < 2.0


def test_mail_large_html_is_cheap_and_not_cut_inside_a_tag() -> None:
    row = b"<div class='spacer-spacer-spacer'><span style='color: red'></span></div>\n"
    raw = b"Content-Type: text/html\n\n<p>Early words</p>\n" + row * 14_000 + b"<p>Late words</p>"

    start = time.perf_counter()
    fields = words_only(extract_fields(raw))
    elapsed_seconds = time.perf_counter() - start

    assert fields == [("body", "Early words")]
    # Loose enough for a loaded machine; the quadratic parse took seconds.
    assert elapsed_seconds < 2.0


# --- never raise -------------------------------------------------------------


def test_mail_unexpected_error_keeps_the_fields_found_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_parts(message: object) -> object:
        raise RuntimeError("simulated parser bug")

    monkeypatch.setattr(mail, "_parts", broken_parts)

    assert words_only(extract_fields(read_message("plain.eml"))) == [
        ("from", "John Doe mail.example.com"),
        ("subject", "Lunch on Thursday?"),
    ]


def test_mail_unexpected_error_falls_back_to_the_raw_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_parse(raw: bytes, **keywords: object) -> object:
        raise RuntimeError("simulated parser bug")

    monkeypatch.setattr(email, "message_from_bytes", broken_parse)
    monkeypatch.setattr(mail, "read_simple", broken_parse)

    assert extract_fields(b"Subject: caf\xe9\n\nbody\n") == [("body", "Subject: café\n\nbody")]


# Pieces of mail syntax, so generated inputs reach the MIME, header and HTML
# code rather than stopping at "no headers, one text body".
MAIL_FRAGMENTS = [
    b"Subject: ",
    b"From: ",
    b"Content-Type: multipart/mixed; boundary=b\n",
    b"Content-Type: text/html; charset=utf-8\n",
    b"Content-Type: text/plain; charset=",
    b"Content-Type: message/rfc822\n",
    b'Content-Type: application/pdf; name="',
    b"Content-Disposition: attachment; filename*=utf-8''",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Transfer-Encoding: x-uuencode\nbegin 644 a\n",
    b"X-Spam-Flag: YES\n",
    b"--b\n",
    b"--b--\n",
    b"=?utf-8?b?",
    b"=?x-nonsense?q?",
    b"?=",
    b"\n",
    b"\r\n",
    b"\n\n",
    b" ",
    b"<a href='http://",
    b'<img src="//[',
    b"<script>",
    b"</style>",
    b"&#x",
    b"<!--",
    b"\x00",
    b"\xe9",
    b"\xff\xfe",
    b"=E2=82",
    b"punycode",
]
mail_like_bytes = st.lists(
    st.one_of(st.sampled_from(MAIL_FRAGMENTS), st.binary(max_size=8)), max_size=40
).map(b"".join)


@settings(deadline=None, database=None)
@given(raw=st.binary(max_size=2_000), policy=st.sampled_from(config.HEADER_POLICIES))
def test_mail_arbitrary_bytes_never_raise(raw: bytes, policy: str) -> None:
    assert_valid_fields(extract_fields(raw, headers=policy))
    identifier = message_id(raw)
    assert identifier is None or isinstance(identifier, str)


@settings(deadline=None, database=None, max_examples=300)
@given(raw=mail_like_bytes, policy=st.sampled_from(config.HEADER_POLICIES))
def test_mail_mime_like_bytes_never_raise(raw: bytes, policy: str) -> None:
    assert_valid_fields(extract_fields(raw, headers=policy))
    identifier = message_id(raw)
    assert identifier is None or isinstance(identifier, str)


# --- message_id ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (read_message("plain.eml"), "<lunch-1@mail.example.com>"),
        (b"message-id:   <lower@example.com>  \r\n\r\nbody", "<lower@example.com>"),
        (b"Subject: s\nMessage-ID:\n <folded@example.com>\n\nbody", "<folded@example.com>"),
        (b"Subject: no id\n\nbody", None),
        (b"Subject: s\n\nMessage-ID: <in-the-body@example.com>\n", None),
        (b"Message-ID:   \n\nbody", None),
        (b"", None),
        (bytes(range(256)), None),
    ],
    ids=[
        "fixture",
        "lowercase-crlf",
        "folded",
        "absent",
        "only-in-body",
        "blank",
        "empty",
        "binary",
    ],
)
def test_mail_message_id(raw: bytes, expected: str | None) -> None:
    assert message_id(raw) == expected
