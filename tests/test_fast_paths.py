"""The fast paths of parsing, tokenizing and hashing (issue 17) read every
message as the plain code of tests/reference_pipeline.py does: the same
tokens, the same buckets, on generated mail, the hostile catalogue and
Hypothesis's broken mail.
"""

from __future__ import annotations

import html.parser
import io
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
import reference_pipeline as reference
from hostile_catalogue import BIG_MESSAGES, HOSTILE_MESSAGES, HostileMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_strategies import hostile_mail

from spamcli import corpus, features, html_text, mail, tokens
from spamcli.config import HEADER_POLICIES
from spamcli.features import FeatureSpec, batch_features, feature_array, feature_indices
from spamcli.tokens import message_tokens, token_string

FAST_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Token counts to stop at: the first token, a few, a model's 500.
LIMITS = (1, 7, 500)
SPECS = (FeatureSpec(bits=20, max_tokens=500), FeatureSpec(bits=12, max_tokens=3))


def assert_tokens_as_the_reference(raw: bytes, policy: str) -> None:
    expected = reference.message_tokens(raw, policy)
    assert message_tokens(raw, policy) == expected
    for limit in LIMITS:
        assert message_tokens(raw, policy, limit) == " ".join(expected.split()[:limit])


def assert_buckets_as_the_reference(texts: list[str], spec: FeatureSpec) -> None:
    expected = [reference.feature_indices(text, spec) for text in texts]
    assert [feature_indices(text, spec) for text in texts] == expected
    assert [feature_array(text, spec).tolist() for text in texts] == expected
    messages, buckets = batch_features(texts, spec)
    assert [buckets[messages == row].tolist() for row in range(len(texts))] == expected


@pytest.mark.parametrize("policy", HEADER_POLICIES)
def test_fast_paths_generated_mail_gives_the_reference_tokens_and_buckets(
    generate_mail: Callable[[str, int, int], list[bytes]], policy: str
) -> None:
    raws = generate_mail("ham", 20, 17) + generate_mail("spam", 20, 17)
    for raw in raws:
        assert_tokens_as_the_reference(raw, policy)
    texts = [message_tokens(raw, policy) for raw in raws]
    for spec in SPECS:
        assert_buckets_as_the_reference(texts, spec)


@pytest.mark.parametrize(
    "message", [message for message in HOSTILE_MESSAGES if message.name not in BIG_MESSAGES]
)
def test_fast_paths_hostile_mail_gives_the_reference_tokens_and_buckets(
    message: HostileMessage,
) -> None:
    raw = message.build()
    for policy in HEADER_POLICIES:
        assert_tokens_as_the_reference(raw, policy)
        assert_buckets_as_the_reference([message_tokens(raw, policy)], SPECS[0])


@FAST_SETTINGS
@given(
    raws=st.lists(hostile_mail(), min_size=1, max_size=5), policy=st.sampled_from(HEADER_POLICIES)
)
def test_fast_paths_broken_mail_gives_the_reference_tokens_and_buckets(
    raws: list[bytes], policy: str
) -> None:
    for raw in raws:
        assert_tokens_as_the_reference(raw, policy)
    texts = [message_tokens(raw, policy) for raw in raws]
    for spec in SPECS:
        assert_buckets_as_the_reference(texts, spec)


# Text that makes the patterns work: words, digits, dots and hyphens of
# host names, $ and !, letters beyond ASCII (a Greek capital sigma lowers by
# what follows it), and white space of every kind.
PATTERN_TEXT = st.lists(
    st.sampled_from(
        [
            *"abZ09_-.$!:/ '\"\t\n\x0b\x1c",
            *("\u00a0", "\u2028", "\u3000", "\u0130", "\u03a3", "\u02b0", "\ud800", "\u00e9"),
            *("mail3.example.com", "x" * 31, "3.53"),
        ]
    ),
    max_size=120,
).map("".join)


@FAST_SETTINGS
@given(text=PATTERN_TEXT)
def test_fast_paths_patterns_find_what_the_plain_patterns_find(text: str) -> None:
    lowered = text.lower()
    assert tokens.TOKEN_PATTERN.findall(lowered) == reference.TOKEN_PATTERN.findall(lowered)
    assert tokens.DOTTED_NAME.findall(lowered) == reference.DOTTED_NAME.findall(lowered)


@FAST_SETTINGS
@given(
    text=st.one_of(
        PATTERN_TEXT, st.text(st.characters(max_codepoint=127), max_size=80), st.just("a$!b_")
    ),
    end=st.integers(0, 130),
)
def test_fast_paths_tokens_of_ascii_text_are_the_patterns_tokens(text: str, end: int) -> None:
    # ASCII text is tokenized with bytes operations, any other with the pattern.
    for case in (text, text.lower()):
        assert tokens._find_tokens(case, end) == tokens.TOKEN_PATTERN.findall(case, 0, end)


@FAST_SETTINGS
@given(text=PATTERN_TEXT, repeat=st.integers(1, 40), needed=st.integers(1, 60))
def test_fast_paths_tokens_of_a_long_text_are_found_a_window_at_a_time(
    text: str, repeat: int, needed: int
) -> None:
    long_text = text * repeat
    expected = reference.tokenize(long_text)[:needed]
    assert tokens._tokens_of_lowered(long_text.lower(), needed) == expected
    assert token_string([("body", long_text)], needed) == " ".join(expected)


@FAST_SETTINGS
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(["body", "subject", "received", "x mailer!", "url"]), PATTERN_TEXT
        ),
        max_size=8,
    ),
    limit=st.sampled_from([None, 1, 5, 40]),
)
def test_fast_paths_token_string_is_the_reference_cut_to_its_limit(
    fields: list[tuple[str, str]], limit: int | None
) -> None:
    expected = reference.token_string(fields)
    if limit is not None:
        expected = " ".join(expected.split(" ")[:limit])
    assert token_string(fields, limit) == expected


@FAST_SETTINGS
@given(
    texts=st.lists(PATTERN_TEXT, max_size=6),
    spec=st.sampled_from([*SPECS, FeatureSpec(bits=16, max_tokens=None)]),
)
def test_fast_paths_buckets_of_any_text_are_the_reference_buckets(
    texts: list[str], spec: FeatureSpec
) -> None:
    # Any text, not only token strings: white space of every kind, lone
    # surrogates, nothing at all.
    assert_buckets_as_the_reference(texts, spec)


def test_fast_paths_ascii_white_space_that_only_text_splits_at_is_all_listed() -> None:
    ascii_white_space = [chr(code) for code in range(128) if chr(code).isspace()]
    only_text = [character for character in ascii_white_space if not character.encode().isspace()]
    assert only_text == list(features._ASCII_SEPARATORS_OF_TEXT)


HTML_TEXT = st.lists(
    st.sampled_from(
        [
            *"<>/='\" \n&;!-?[]",
            *("<b>", "</b>", "<p>", "<br/>", "<a href='http://x.example/a'>", "<td", "</td>"),
            *("<img src=http://i.example/p.png />", "<script>", "</script>", "<style>"),
            *("</style >", "</SCRIPT>", "<!--", "-->", "<!doctype html>", "<![CDATA[", "]]>"),
            *("&amp;", "&#65;", "&#x4", "caf", "word", "\u00e9", "<?php", "</", "<a\nhref="),
        ]
    ),
    max_size=60,
).map("".join)


class _HtmlTextParserCountingPositions(html_text.HtmlTextParser):
    """The parser with HTMLParser's own position counting back."""

    updatepos = html.parser.HTMLParser.updatepos


@FAST_SETTINGS
@given(source=HTML_TEXT, chunk=st.sampled_from([7, 32_768]))
def test_fast_paths_html_reads_the_same_without_counting_positions(source: str, chunk: int) -> None:
    parsers = [html_text.HtmlTextParser(), _HtmlTextParserCountingPositions()]
    errors = []
    for parser in parsers:
        try:
            for start in range(0, len(source), chunk):
                parser.feed(source[start : start + chunk])
            parser.close()
        except AssertionError as error:  # a marked section HTMLParser cannot name: "<![]"
            errors.append(str(error))
    fast, counting = parsers
    assert (fast.text_pieces, fast.urls) == (counting.text_pieces, counting.urls)
    assert len(errors) in (0, 2)


# Markup as mail writes it, well and badly: attributes quoted, bare, empty,
# right after a quote, "=" in values and names, ">" inside quotes, end tags
# with attributes, comments, declarations, references cut anywhere.
SCANNED_MARKUP = st.lists(
    st.sampled_from(
        [
            *" \n\t\r\x0b\x00a=\"'&;<>/",
            *(
                "word ",
                "\u00e9",
                "&amp;",
                "&amp",
                "&#65;",
                "&#x41",
                "&notin",
                "&ampxx",
                "<3",
                "< a>",
            ),
            *(
                "<b>",
                "</b>",
                "<p>",
                "</p>",
                "<br/>",
                "<BR >",
                "<o:p>",
                "</o:p>",
                "<title>T</title>",
            ),
            *("<a href='http://x.example/a'>", "</a>", "<A HREF=http://y.example/b/>"),
            *("<img src=http://i.example/p.png />", "<a href=http://x.example/?a=b&amp;c=d>"),
            *('<a t="x"href="http://r.example/">', "<a t='x'src=y.example>", '<a t = "y>z">'),
            *("<font face=Arial, Helvetica size=2>", "<td width=100% cellPadding= x=0>"),
            *('<img border=0">', '<a "x">', "<a =b>", "<a b==c>", "<a/b>", "<a\vb>", "<é>"),
            *(
                "<a t='x>y' href=\"http://q.example/\">",
                "<a href=\"x&amp;y\" src='&#104;ttp://z.example'>",
            ),
            *("</font\n", "</td msimagelist>", "</>", "</1>", "</ a >", "</script foo>"),
            *(
                "<script>var a=1<2;</script>",
                "<style>p{}</style >",
                "<script/>",
                "<script>",
                "</SCRIPT>",
            ),
            *("<!-- c -->", "<!-- a > b -->", "<!--", "-->", "<!-->", "<!--->", "<!doctype html>"),
            *(
                "<?xml x?>",
                "<!x>",
                "<![CDATA[",
                "]]>",
                "<![if !vml]>",
                "<?php",
                "</",
                "<td",
                "<a\nhref=",
            ),
            # What the scanner reads a stretch at a time, and where it
            # hands over to HTMLParser's methods: letters that lower-case
            # otherwise (a long s, the Kelvin sign, a dotted capital I),
            # script and style in every case and ending, names and
            # attributes with "<", quotes, NUL and odd white space.
            *("\u017f", "\u212a", "\u0130", "</\u017fcript>", "</scr\u0130pt>", "<script<x>"),
            *("<SCRIPT>", "<sTyLe>", "</STYLE >", "<Script/>", "<style/>", "</script\n>"),
            *('<a"\x00b>', '<a" href=x>', "</ >", "< /a>", "<br/ >", "<br / >", "<a b=c/>"),
            *("<a b='c'/>", "<a\x0bb>", "<p\x0b>", "</p\x0b>", "<a\u00a0href=x>", "<d&#105;v>"),
            *("<div>", "</DIV>", "<blockquote>", "<bloc\u212aquote>", "</td\n>", "<TD\tclass=x>"),
            *('<a title="<b>" href=http://k.example/>', "<a b='<'>", "<a<b>", "<a b=c<d>"),
            *("<!>", "<!->", "<!-x>", "<?>", "<!DOCTYPE", "<![CDATA[x]]>", "<![endif]>", "<![]>"),
            *("<!-- <b> -->", "<!-- a --!>", "--\n>", "<", "<<", "<>", "< ", "<1", "<\u00e9"),
            # References: to "<", to nothing, longer than 34 characters,
            # "&nbsp;" after references cut short.
            *("&lt;", "&#60;", "&#x3c;", "&LT", "&#1;", "&#0000000000000000000000000000000065;"),
            *("&CounterClockwiseContourIntegral;", "&nbsp;", "&nbsp", "&amp&nbsp;", "&&nbsp;"),
            *("&nbsp;;", "&#65&nbsp;", "&notin", "&no", "&#x&nbsp;", "&nbs<b>p;"),
            # Links: references, case, users and ports, spaces, brackets.
            *(
                '<a href="&#104;ttp://z.example/">',
                "<a HREF='//b.example/p'>",
                "<a Href=c.example>",
            ),
            *('<img SRC="http://d.example/x.gif" src=http://e.example/>', "<a href=http://[::1]/>"),
            *("<a href=http://u:p@f.example:81/a?b#c>", "<a href=' http://g.example/ '>"),
            *(
                '<a href="http://h.example/a b">',
                "<a href=HTTP://I.EXAMPLE/P>",
                "<a href=mailto:x>",
            ),
        ]
    ),
    max_size=60,
).map("".join)


def _stopping_after(words: int) -> Callable[[str], bool]:
    def wants_more(text: str) -> bool:
        return len(text.split()) < words

    return wants_more


@FAST_SETTINGS
@given(
    source=st.tuples(SCANNED_MARKUP, st.sampled_from([1, 3, 12])).map(
        lambda pair: pair[0] * pair[1]
    ),
    first_chunk=st.sampled_from([1, 2, 3, 5, 7, 64, 2_048]),
    chunk=st.sampled_from([1, 4, 9, 64, 32_768]),
    budget=st.sampled_from([1, 5, 30, 1_000_000]),
    words=st.sampled_from([None, 1, 3, 20]),
)
def test_fast_paths_html_scanner_reads_as_the_parser_reads(
    source: str, first_chunk: int, chunk: int, budget: int, words: int | None
) -> None:
    # Pieces of every size: what the scanner has read at each piece's end
    # (text held back included) is what HTMLParser has, early stops alike.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(html_text, "_FIRST_HTML_CHUNK_CHARACTERS", first_chunk)
        patch.setattr(html_text, "_HTML_CHUNK_CHARACTERS", max(first_chunk, chunk))
        wants_more = None if words is None else _stopping_after(words)
        expected = html_text._html_to_text_with_parser(source, budget, wants_more)
        assert html_text.html_to_text(source, budget, wants_more) == expected


def test_fast_paths_html_scanner_reads_ordinary_markup_itself() -> None:
    source = (
        "<!DOCTYPE html><html><head><style>p {}</style><title>Offer</title></head>"
        '<body><p class=x>Cheap <b>V</b>iagra, <a href="http://shop.example/buy?a=1&amp;b=2">'
        "buy</a><br/><img src='http://i.example/p.png' width=1><!-- note --></p></body></html>"
    )
    scanner = html_text.HtmlScanner(source)
    scanner.feed(source)
    scanner.close()
    assert scanner.markup_read_by_the_parser == 1  # <style>, then its end found
    assert scanner.visible_text() == "Offer Cheap Viagra, buy"
    assert scanner.urls == ["shop.example/buy", "i.example/p.png"]
    assert html_text.html_to_text(source, 1_000) == ("Offer Cheap Viagra, buy", scanner.urls, False)


@pytest.mark.parametrize(
    "source",
    [
        "<p>a</p><![if !vml]>b<![endif]>",
        "<p>a<!-- never closed",
        "<a b='c>d",
        "<p>x</p",
        "<td msimagelist>a</td msimagelist>b",
        "<a href=x/b>c < d",
    ],
)
def test_fast_paths_html_scanner_leaves_other_markup_to_the_parser(source: str) -> None:
    scanner = html_text.HtmlScanner(source)
    scanner.feed(source)
    scanner.close()
    assert scanner.markup_read_by_the_parser > 0
    expected = html_text._html_to_text_with_parser(source, 1_000, None)
    assert (scanner.visible_text(), scanner.urls, False) == expected
    assert html_text.html_to_text(source, 1_000) == expected


def test_fast_paths_html_scanner_is_used_with_the_html_parser_it_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On another Python, html.parser may read otherwise: HTMLParser reads all.
    if sys.version_info[:3] == (3, 11, 7):
        assert html_text._SCANNER_FOLLOWS_THE_PARSER
    monkeypatch.setattr(html_text, "_SCANNER_FOLLOWS_THE_PARSER", False)
    monkeypatch.setattr(html_text, "HtmlScanner", None)
    assert html_text.html_to_text("<p>a<b>b</b></p>", 10) == ("ab", [], False)


def test_fast_paths_html_caches_keep_no_long_markup() -> None:
    # A message made to fill the caches with long names, attributes and
    # links leaves them as they were: the daemon keeps them while it runs.
    long_tail = "x" * html_text._MAX_CACHED_MARKUP_CHARACTERS
    source = "".join(
        f"<div{number}{long_tail} href='http://a.example/{number}{long_tail}'>w</div{number}{long_tail}>"
        for number in range(50)
    )
    spaces, links = len(html_text._SPACE_OF_TAG), len(html_text._LINKS_OF_ATTRIBUTES)
    urls = html_text._cached_host_and_path.cache_info().currsize
    text, found, _ = html_text.html_to_text(source, 10**6)
    assert text.startswith("w") and len(found) == 50
    assert len(html_text._SPACE_OF_TAG) == spaces
    assert len(html_text._LINKS_OF_ATTRIBUTES) == links
    assert html_text._cached_host_and_path.cache_info().currsize == urls


# Text pieces as the scanner collects them: words, white space of every
# kind, nothing.
TEXT_PIECES = st.lists(
    st.lists(st.sampled_from(["", " ", "a", "bc", "\n", "\x1c", "\u00a0", "\u3000", "d e"])).map(
        "".join
    ),
    max_size=12,
)


@FAST_SETTINGS
@given(pieces=TEXT_PIECES, asked=st.lists(st.booleans(), min_size=12, max_size=12))
def test_fast_paths_html_scanner_joins_its_text_as_the_parser(
    pieces: list[str], asked: list[bool]
) -> None:
    # The scanner splits only the pieces since it was last asked.
    scanner = html_text.HtmlScanner("")
    for piece, ask in zip(pieces, asked, strict=False):
        scanner.text_pieces.append(piece)
        if ask:
            assert scanner.visible_text() == " ".join("".join(scanner.text_pieces).split())
    assert scanner.visible_text() == " ".join("".join(scanner.text_pieces).split())


def _url_host_and_path_by_urlsplit(url: str) -> str | None:
    """url_host_and_path as it was, urlsplit alone."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    path = parts.path if parts.path not in ("", "/") else ""
    return " ".join((host + path).split())


URL_TEXT = st.tuples(
    st.sampled_from(["", "http://", "HTTPS://", "ftp://", "a+b.c://", "x:", "//", " http://"]),
    st.lists(
        st.sampled_from(
            [
                *"aZ09.-_/?#@:[]%~!\"'<>\\ \t\n\r\x00\x1f\x7f",
                *("\u00e9", "\u0130", "\u212a", "\u3000", "\u00a0", "www.example.com", "/a/b"),
            ]
        ),
        max_size=25,
    ).map("".join),
).map("".join)


@FAST_SETTINGS
@given(url=URL_TEXT)
def test_fast_paths_a_plain_link_is_split_as_urlsplit_splits_it(url: str) -> None:
    assert html_text._host_and_path(url) == _url_host_and_path_by_urlsplit(url)
    assert html_text.url_host_and_path(url) == _url_host_and_path_by_urlsplit(url)


HEADER_TEXT = st.lists(
    st.sampled_from(
        [*"ab Z:-\t\r\n", "\r\n ", "\n\t", "=?utf-8?q?caf=C3=A9?=", "=?", "\udce9", "\u00e9"]
    ),
    max_size=40,
).map("".join)


@FAST_SETTINGS
@given(value=HEADER_TEXT)
def test_fast_paths_header_text_is_the_reference_header_text(value: str) -> None:
    assert mail._header_text(value) == reference.header_text(value)
    assert mail._field_name(value) == reference.header_text(value).lower()


def test_fast_paths_long_header_names_are_not_cached() -> None:
    name = "X-" + "n" * 1000
    mail._cached_field_name.cache_clear()
    assert mail._field_name(name) == name.lower()
    assert mail._cached_field_name.cache_info().currsize == 0


@pytest.mark.parametrize("size", [0, 1, 5000, corpus._PEEK_BYTES - 1, corpus._PEEK_BYTES + 5])
def test_fast_paths_a_file_head_is_read_as_a_plain_read_reads_it(tmp_path: Path, size: int) -> None:
    path = tmp_path / "message"
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    with open(path, "rb") as stream:
        assert corpus._read_head(stream) == data[: corpus._PEEK_BYTES]
    assert corpus._read_head(io.BytesIO(data)) == data[: corpus._PEEK_BYTES]


def test_fast_paths_a_file_that_grows_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "message"
    path.write_bytes(b"Subject: x\n\nfirst")
    real_fstat = corpus.os.fstat

    def size_before_it_grew(descriptor: int) -> object:
        status = real_fstat(descriptor)
        return type("Status", (), {"st_mode": status.st_mode, "st_size": 3})()

    with open(path, "rb") as stream:
        monkeypatch.setattr(corpus.os, "fstat", size_before_it_grew)
        head = corpus._read_head(stream)
    assert head == b"Subject: x\n\nfirst"


@pytest.mark.parametrize("size_seen", [3, 10_000])
def test_fast_paths_a_folder_file_whose_size_changed_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size_seen: int
) -> None:
    # A file of a folder is read with one read of the size its status gives;
    # if that read gives another size, the file grew or shrank, and it is
    # read again the general way, to its end.
    data = b"Subject: x\n\nfirst words, then more"
    (tmp_path / "message").write_bytes(data)
    real_fstat = corpus.os.fstat

    def another_size(descriptor: int) -> object:
        status = real_fstat(descriptor)
        return type("Status", (), {"st_mode": status.st_mode, "st_size": size_seen})()

    monkeypatch.setattr(corpus.os, "fstat", another_size)
    assert corpus._read_small_regular_file(str(tmp_path / "message")) is None
    assert list(corpus.iter_messages(tmp_path)) == [
        corpus.RawMessage(str(tmp_path / "message"), data)
    ]


# Header blocks with a Message-ID anywhere, in any case, folded or not,
# ended by a blank line of either kind or by nothing.
MESSAGE_ID_BYTES = st.lists(
    st.sampled_from(
        [
            b"Message-ID: <a@b.example>",
            b"message-id:<c@d>",
            b"MESSAGE-ID:",
            b" <folded@x>",
            b"X-Message-ID: <no@x>",
            b"Subject: s",
            b"\n",
            b"\r\n",
            b"\r",
            b"\t",
            b" ",
            b"\n\n",
            b"\n\r\n",
            b"\xe9",
            b"<",
            b"Message-Id: ",
        ]
    ),
    max_size=12,
).map(b"".join)


@FAST_SETTINGS
@given(raw=MESSAGE_ID_BYTES)
def test_fast_paths_message_id_is_the_reference_message_id(raw: bytes) -> None:
    assert mail.message_id(raw) == reference.message_id(raw)
    assert mail.message_id(bytearray(raw)) == reference.message_id(raw)


# HTML parts from a few hundred bytes to tens of kilobytes: the tokenizer,
# wanting a model's first tokens only, stops their parse early.
HTML_DOCUMENT = st.tuples(st.lists(HTML_TEXT, min_size=1, max_size=6), st.integers(1, 30)).map(
    lambda pieces_and_repeat: "".join(pieces_and_repeat[0]) * pieces_and_repeat[1]
)


def html_message(html_text: str, multipart: bool) -> bytes:
    body = html_text.encode("utf-8")
    if not multipart:
        return b"Subject: offer\nContent-Type: text/html; charset=utf-8\n\n" + body
    return (
        b'Subject: offer\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nplain words first\n"
        b"--b\nContent-Type: text/html; charset=utf-8\n\n" + body + b"\n"
        b"--b\nContent-Type: text/html\n\n<p>a second <a href='http://y.example/z'>part</a>\n"
        b'--b\nContent-Type: application/pdf; name="after.pdf"\n\nJVBERi0=\n--b--\n'
    )


@FAST_SETTINGS
@given(
    html_text=HTML_DOCUMENT,
    multipart=st.booleans(),
    policy=st.sampled_from(HEADER_POLICIES),
    limit=st.sampled_from([1, 2, 7, 60, 500]),
)
def test_fast_paths_an_html_part_cut_short_gives_the_first_tokens(
    html_text: str, multipart: bool, policy: str, limit: int
) -> None:
    raw = html_message(html_text, multipart)
    whole = message_tokens(raw, policy)
    assert message_tokens(raw, policy, limit) == " ".join(whole.split(" ")[:limit])


@pytest.mark.parametrize("limit", [1, 3, 4, 5, 6])
def test_fast_paths_an_html_part_after_headers_that_gave_every_token(limit: int) -> None:
    # The headers give 5 tokens here; with a limit at or below that the HTML
    # part was asked whether it had enough with none wanted (it looped).
    raw = html_message("<p>" + "word " * 3000 + "</p>", multipart=False)
    whole = message_tokens(raw, "all")
    assert message_tokens(raw, "all", limit) == " ".join(whole.split(" ")[:limit])
    assert tokens._tokens_of_lowered("some words", 0) == []


def test_fast_paths_an_html_part_is_parsed_no_further_than_the_tokens_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed: list[int] = []
    original_feed = html_text.HtmlScanner.feed

    def counting_feed(scanner: html_text.HtmlScanner, data: str) -> None:
        fed.append(len(data))
        original_feed(scanner, data)

    monkeypatch.setattr(html_text.HtmlScanner, "feed", counting_feed)
    raw = html_message("<p>cheap pills, buy now</p>\n" * 4000, multipart=False)  # 112 KB
    message_tokens(raw, "all", 500)
    assert sum(fed) <= 2_048 + 8_192  # of 112,000: two pieces, 2 KB and 8 KB
    fed.clear()
    message_tokens(raw, "all")
    assert sum(fed) == len("<p>cheap pills, buy now</p>\n" * 4000)


SPAMASSASSIN_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "spamassassin"


@pytest.mark.slow
def test_fast_paths_the_spamassassin_corpora_give_the_same_first_tokens() -> None:
    archives = sorted(SPAMASSASSIN_DIR.glob("*.tar.bz2"))
    if not archives:
        pytest.skip(f"{SPAMASSASSIN_DIR} holds no archives: the shared SpamAssassin corpus")
    count = 0
    items = (item for archive in archives for item in corpus.iter_messages(archive))
    for item in items:
        if isinstance(item, corpus.ReadFailure):
            continue
        whole = message_tokens(item.raw, "all")
        assert message_tokens(item.raw, "all", 500) == " ".join(whole.split(" ")[:500]), item.source
        count += 1
    assert count > 6000


CSDMC_DIR = SPAMASSASSIN_DIR.parent / "csdmc2010"


@pytest.mark.slow
@pytest.mark.parametrize("collection", [SPAMASSASSIN_DIR, CSDMC_DIR], ids=lambda path: path.name)
def test_fast_paths_html_scanner_reads_every_corpus_html_part_as_the_parser(
    monkeypatch: pytest.MonkeyPatch, collection: Path
) -> None:
    archives = sorted(collection.glob("*.tar.bz2"))
    if not archives:
        pytest.skip(f"{collection} holds no archives: the shared corpora")
    calls: list[tuple[str, int, Callable[[str], bool] | None]] = []
    scanned = html_text.html_to_text

    def comparing(
        html: str, budget: int, wants_more: Callable[[str], bool] | None = None
    ) -> tuple[str, list[str], bool]:
        result = scanned(html, budget, wants_more)
        assert result == html_text._html_to_text_with_parser(html, budget, wants_more)
        calls.append((html, budget, wants_more))
        return result

    monkeypatch.setattr(html_text, "html_to_text", comparing)
    items = (item for archive in archives for item in corpus.iter_messages(archive))
    for item in items:
        if not isinstance(item, corpus.ReadFailure):
            message_tokens(item.raw, "all", 500)  # the scoring path, stopping early
            message_tokens(item.raw, "all")
    assert len(calls) > 500
