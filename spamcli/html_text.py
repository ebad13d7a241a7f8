"""An HTML part → its visible text and the links in it.

Its own module, imported by mail.py only when a message has an HTML part:
html.parser and html.entities cost a one-message filter 2.4 ms of start-up,
and most ham has no HTML at all (188 of the SpamAssassin corpora's 4,150
ham messages have an HTML part, 1,022 of its 1,896 spam).

Two readers give the same text and links. HtmlScanner reads the markup of
ordinary mail, a regular expression a tag, and says it cannot read the rest:
a tag whose attributes are written unusually, ``<![``, markup that never
ends. HtmlTextParser, html.parser's HTMLParser (pure Python, a dozen calls a
tag), reads what the scanner gives up on, from the start. The scanner
follows HTMLParser piece by piece: what it has read after each piece fed,
text held back at a piece's end included, is what HTMLParser has read, so
a parse stopped early (see html_to_text) stops with the same text.
tests/test_fast_paths.py checks the two agree on made-up markup cut into
pieces of every size, and on every HTML part of the corpora.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser
from typing import Protocol

from spamcli import config

# HTMLParser is pure Python and was half of the time spent on the corpus: a
# 1 MB HTML part took 270 ms here. Only the first this many characters of an HTML
# part are parsed (45 ms at most), more than any newsletter's visible text.
_MAX_HTML_SOURCE_CHARACTERS = config.MAX_TEXT_CHARACTERS
_HTML_CHUNK_CHARACTERS = 32_768
# When the caller wants only a text's first tokens (iter_fields'
# WANTS_MORE), the parser is fed a small piece first, then pieces four times
# larger, and stops once the text has enough: a model reads its first 500
# tokens, about 300 of them from the headers, so most HTML parts need their
# first 2 KB or so.
_FIRST_HTML_CHUNK_CHARACTERS = 2_048


# Block-level tags end a word; inline tags (b, span, font) do not, so that
# "V<b></b>iagra" reads as one word, as a reader sees it.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main", "nav", "ol",
        "option", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th",
        "thead", "title", "tr", "ul",
    }
)  # fmt: skip
_INVISIBLE_TAGS = frozenset({"script", "style"})
_LINK_ATTRIBUTES = frozenset({"href", "src"})


def html_to_text(
    html: str, character_budget: int, wants_more: Callable[[str], bool] | None = None
) -> tuple[str, list[str], bool]:
    """Return the visible text of an HTML document, the links in it, and
    whether the parse stopped early because WANTS_MORE (see mail.iter_fields)
    said the text so far was enough."""
    source = html
    if len(source) > _MAX_HTML_SOURCE_CHARACTERS:
        # Cut after a tag, so the parser is not left with half a tag as text.
        end_of_tag = source.rfind(">", 0, _MAX_HTML_SOURCE_CHARACTERS) + 1
        source = source[: end_of_tag or _MAX_HTML_SOURCE_CHARACTERS]
    try:
        return _read_in_pieces(HtmlScanner(source), source, character_budget, wants_more)
    except Exception:
        # Markup the scanner does not read (_Unreadable), or a fault of its
        # own: HTMLParser reads the part again from the start.
        pass
    return _html_to_text_with_parser(source, character_budget, wants_more)


def _html_to_text_with_parser(
    source: str, character_budget: int, wants_more: Callable[[str], bool] | None
) -> tuple[str, list[str], bool]:
    """html_to_text of an already cut SOURCE, read by HTMLParser alone."""
    parser = HtmlTextParser()
    try:
        return _read_in_pieces(parser, source, character_budget, wants_more)
    except Exception:
        return _text_of(parser), parser.urls, False


class _TextReader(Protocol):
    text_pieces: list[str]
    character_count: int
    urls: list[str]

    def feed(self, data: str) -> None: ...

    def close(self) -> None: ...


def _read_in_pieces(
    reader: _TextReader,
    source: str,
    character_budget: int,
    wants_more: Callable[[str], bool] | None,
) -> tuple[str, list[str], bool]:
    start = 0
    chunk = _HTML_CHUNK_CHARACTERS if wants_more is None else _FIRST_HTML_CHUNK_CHARACTERS
    while start < len(source):
        reader.feed(source[start : start + chunk])
        start += chunk
        if reader.character_count >= character_budget:
            break
        if wants_more is not None and start < len(source):
            # The pieces handled so far are the text's exact beginning
            # (the parser holds back only what a later piece may change).
            text = _text_of(reader)
            if not wants_more(text):
                return text, reader.urls, True
            chunk = min(4 * chunk, _HTML_CHUNK_CHARACTERS)
    reader.close()
    return _text_of(reader), reader.urls, False


def _text_of(reader: _TextReader) -> str:
    return " ".join("".join(reader.text_pieces).split())


class _Unreadable(Exception):
    """Markup HtmlScanner leaves to HTMLParser."""


# The markup HtmlScanner reads, in the patterns of html.parser (Python
# 3.11) for its parts, so that what matches is what HTMLParser makes of it:
# - a start tag: its name, attributes each after white space (a name, then
#   perhaps "=" and a value, quoted or bare), white space, ">" or "/>".
#   HTMLParser reads more ("/" between attributes); that falls back.
#   Possessive, so that no attribute is read in two ways.
_TAG_NAME = r"[a-zA-Z][^\t\n\r\f />\x00]*+"
# An attribute: white space before it, or none right after a quoted value;
# its name; perhaps "=" and a value.
_ATTRIBUTE_PATTERN = (
    r"(?:\s++|(?<=['\"]))([^\s/>][^\s/=>]*+)"
    r"(?:\s*+=++\s*+('[^']*+'|\"[^\"]*+\"|(?!['\"])[^>\s]*+))?+"
)
_START_TAG = re.compile(
    rf"<(?P<name>{_TAG_NAME})(?P<attributes>(?:{_ATTRIBUTE_PATTERN})*+)\s*+(?P<slash>/?)>"
)
_ATTRIBUTE = re.compile(_ATTRIBUTE_PATTERN)
# Only a tag with one of these in its attributes can hold a link.
_MAY_LINK = re.compile(r"href|src", re.IGNORECASE)
# How far HTMLParser reads a start tag that a piece's end cuts short (its
# locatestarttagend_tolerant): it waits for more unless it finds a whole
# tag in the piece, which the rest of the source would make another tag.
_START_TAG_SO_FAR = re.compile(
    r"""
  <[a-zA-Z][^\t\n\r\f />\x00]*
  (?:[\s/]*
    (?:(?<=['"\s/])[^\s/>][^\s/=>]*
      (?:\s*=+\s*
        (?:'[^']*'
          |"[^"]*"
          |(?!['"])[^>\s]*
         )
        \s*
       )?(?:\s|/(?!>))*
     )*
   )?
  \s*
""",
    re.VERBOSE,
)
# - an end tag: it ends at the first ">"; its name is endtagfind's, else
#   tagfind_tolerant's, else it names nothing (a bogus comment);
_END_TAG = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_END_TAG_NAME = re.compile(f"({_TAG_NAME})")
# - a comment's end, as _markupbase's; the end of script and style, as
#   HTMLParser.set_cdata_mode's.
_COMMENT_END = re.compile(r"--\s*>")
_CONTENT_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in _INVISIBLE_TAGS}
# Text at the end of a piece is held back while an "&" in its last 34
# characters has neither white space nor ";" after it: the rest of a
# character reference may follow (HTMLParser's rule).
_HELD_TEXT_CHARACTERS = 34
_SPACE_OR_SEMICOLON = re.compile(r"[\s;]")


def _waits_for_more(source: str, start: int, end: int) -> bool:
    """Whether HTMLParser, given SOURCE[:END], waits for more at the start
    tag at START (HTMLParser.check_for_whole_start_tag returning -1)."""
    so_far = _START_TAG_SO_FAR.match(source, start, end)
    assert so_far is not None  # "<" and a letter
    after = so_far.end()
    if after >= end:
        return True
    following = source[after]
    if following == "/":
        return not (after + 1 < end and source[after + 1] == ">")
    return following.isascii() and (following.isalpha() or following in "=/")


class _VisibleText:
    """What both readers collect, and how each tag and piece of text adds to
    it (the tags' names lower-cased)."""

    def __init__(self) -> None:
        self.text_pieces: list[str] = []
        self.character_count = 0
        self.urls: list[str] = []
        self._invisible_depth = 0

    def _open(self, name: str) -> None:
        if name in _INVISIBLE_TAGS:
            self._invisible_depth += 1
        elif name in _BLOCK_TAGS:
            self.text_pieces.append(" ")

    def _end_tag(self, name: str) -> None:
        if name in _INVISIBLE_TAGS:
            self._invisible_depth = max(0, self._invisible_depth - 1)
        elif name in _BLOCK_TAGS:
            self.text_pieces.append(" ")

    def _data(self, data: str) -> None:
        if not self._invisible_depth:
            self.text_pieces.append(data)
            self.character_count += len(data)

    def _link(self, value: str) -> None:
        """An href or src attribute's value, entities unescaped."""
        url = url_host_and_path(value)
        if url:
            self.urls.append(url)


class HtmlScanner(_VisibleText):
    """The visible text and href/src links of SOURCE, read from the pieces
    fed (the start of SOURCE, one piece after another) as HtmlTextParser
    reads them; raises _Unreadable for markup it does not read (see the
    module's doc). SOURCE itself says whether markup cut at a piece's end
    is whole further on (then it waits, as HTMLParser does) or never ends
    (then it gives up).

    The SpamAssassin corpora's 1,169 HTML parts as the scorer reads them
    (stopping early) took html_to_text 1.70 s here, against 2.96 s with
    HTMLParser alone; 20 of them fall back (a misspelt start tag, an
    Office ``<![if ...]>``, a comment that never ends), 3 of CSDMC2010's 479.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self._read = 0  # SOURCE[:_read] is handled
        self._fed = 0  # SOURCE[:_fed] has been fed
        # Within script or style: the pattern of its end, and its name.
        self._content_end: re.Pattern[str] | None = None
        self._content_name = ""
        self._markup_held = False  # the last pass stopped at markup cut short

    def feed(self, data: str) -> None:
        self._fed += len(data)
        self._scan()

    def close(self) -> None:
        held = self.source[self._read : self._fed]
        if not held or self._content_end is not None:
            return  # HTMLParser drops script or style that never ends
        if self._markup_held and held != "<":
            raise _Unreadable("markup cut short")
        self._data(unescape(held))
        self._read = self._fed

    def _scan(self) -> None:
        source, end, position = self.source, self._fed, self._read
        self._markup_held = False
        while position < end:
            if self._content_end is not None:
                closing = self._content_end.search(source, position, end)
                if closing is None:
                    break
                self._data(source[position : closing.start()])
                self._end_tag(self._content_name)
                self._content_end = None
                position = closing.end()
                continue
            next_markup = source.find("<", position, end)
            if next_markup < 0:
                ampersand = source.rfind("&", max(position, end - _HELD_TEXT_CHARACTERS), end)
                if ampersand >= 0 and not _SPACE_OR_SEMICOLON.search(source, ampersand, end):
                    break
                next_markup = end
            if position < next_markup:
                self._data(unescape(source[position:next_markup]))
            position = next_markup
            if position == end:
                break
            markup_end = self._markup(position, end)
            if markup_end < 0:
                self._markup_held = True
                break
            position = markup_end
        self._read = position

    def _markup(self, start: int, end: int) -> int:
        """Handle the markup at START, a "<"; return where it ends, or -1
        when the piece fed ends within it (more must be fed)."""
        source = self.source
        if start + 1 >= end:
            return -1
        second = source[start + 1]
        if second.isascii() and second.isalpha():
            tag = _START_TAG.match(source, start)
            if tag is None:
                raise _Unreadable("start tag")
            if tag.end() > end:
                if not _waits_for_more(source, start, end):
                    raise _Unreadable("start tag read otherwise when cut short")
                return -1
            self._start_tag(tag)
            return tag.end()
        if second == "/":
            markup_end = source.find(">", start + 1) + 1
            if markup_end <= 0:
                raise _Unreadable("end tag that never ends")
            if markup_end > end:
                return -1
            closing = _END_TAG.match(source, start, markup_end)
            if closing is None:
                closing = _END_TAG_NAME.match(source, start + 2, markup_end)
            if closing is not None:
                self._end_tag(closing.group(1).lower())
            return markup_end
        if second == "!" or second == "?":
            if source.startswith("<!--", start):
                comment_end = _COMMENT_END.search(source, start + 4)
                markup_end = -1 if comment_end is None else comment_end.end()
            elif source.startswith("<![", start):
                raise _Unreadable("marked section")
            else:
                # A declaration (<!DOCTYPE ...>), a processing instruction
                # (<?...>) or what HTMLParser takes for a bogus comment: all
                # end at the next ">".
                markup_end = source.find(">", start + 2) + 1
            if markup_end <= 0:
                raise _Unreadable("markup that never ends")
            return -1 if markup_end > end else markup_end
        self._data("<")
        return start + 1

    def _start_tag(self, tag: re.Match[str]) -> None:
        name = tag.group("name").lower()
        self._open(name)
        attributes = tag.group("attributes")
        if attributes and _MAY_LINK.search(attributes):
            for attribute in _ATTRIBUTE.finditer(attributes):
                value = attribute.group(2)
                if value and attribute.group(1).lower() in _LINK_ATTRIBUTES:
                    if value[0] in "\"'":
                        value = value[1:-1]
                    if value:
                        self._link(unescape(value))
        if tag.group("slash"):
            self._end_tag(name)
        elif name in _INVISIBLE_TAGS:
            self._content_end = _CONTENT_END[name]
            self._content_name = name


class HtmlTextParser(_VisibleText, HTMLParser):
    """Collect the visible text (entities unescaped) and the href/src links."""

    def __init__(self) -> None:
        _VisibleText.__init__(self)
        HTMLParser.__init__(self, convert_charrefs=True)

    def updatepos(self, i: int, j: int) -> int:
        # HTMLParser counts the lines and columns of all it reads, for
        # getpos() alone, which nothing here calls: 10 % of its time on the
        # SpamAssassin corpora's 1,210 HTML parts.
        return j

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag)
        for name, value in attrs:
            if name in _LINK_ATTRIBUTES and value:
                self._link(value)

    def handle_endtag(self, tag: str) -> None:
        self._end_tag(tag)

    def handle_data(self, data: str) -> None:
        self._data(data)


@functools.lru_cache(maxsize=4096)
def url_host_and_path(url: str) -> str | None:
    """``https://User@Www.Example.com:8080/a/b?id=42`` → ``www.example.com/a/b``.

    Only links with a host count: relative links, ``cid:`` images, ``data:``
    and ``mailto:`` say nothing about where the reader is sent.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    path = parts.path if parts.path not in ("", "/") else ""
    return " ".join((host + path).split())
