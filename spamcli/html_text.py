"""An HTML part → its visible text and the links in it.

Its own module, imported by mail.py only when a message has an HTML part:
html.parser and html.entities cost a one-message filter 2.4 ms of start-up,
and most ham has no HTML at all (188 of the SpamAssassin corpora's 4,150
ham messages have an HTML part, 1,022 of its 1,896 spam).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from html.parser import HTMLParser

from spamcli import config

# HTMLParser is pure Python and half of the time spent on the corpus: a 1 MB
# HTML part took 270 ms here. Only the first this many characters of an HTML
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
    parser = HtmlTextParser()
    source = html
    if len(source) > _MAX_HTML_SOURCE_CHARACTERS:
        # Cut after a tag, so the parser is not left with half a tag as text.
        end_of_tag = source.rfind(">", 0, _MAX_HTML_SOURCE_CHARACTERS) + 1
        source = source[: end_of_tag or _MAX_HTML_SOURCE_CHARACTERS]
    try:
        start = 0
        chunk = _HTML_CHUNK_CHARACTERS if wants_more is None else _FIRST_HTML_CHUNK_CHARACTERS
        while start < len(source):
            parser.feed(source[start : start + chunk])
            start += chunk
            if parser.character_count >= character_budget:
                break
            if wants_more is not None and start < len(source):
                # The pieces handled so far are the text's exact beginning
                # (the parser holds back only what a later piece may change).
                text = " ".join("".join(parser.text_pieces).split())
                if not wants_more(text):
                    return text, parser.urls, True
                chunk = min(4 * chunk, _HTML_CHUNK_CHARACTERS)
        parser.close()
    except Exception:
        pass
    return " ".join("".join(parser.text_pieces).split()), parser.urls, False


class HtmlTextParser(HTMLParser):
    """Collect the visible text (entities unescaped) and the href/src links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text_pieces: list[str] = []
        self.character_count = 0
        self.urls: list[str] = []
        self._invisible_depth = 0

    def updatepos(self, i: int, j: int) -> int:
        # HTMLParser counts the lines and columns of all it reads, for
        # getpos() alone, which nothing here calls: 10 % of its time on the
        # SpamAssassin corpora's 1,210 HTML parts.
        return j

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._invisible_depth += 1
        elif tag in _BLOCK_TAGS:
            self.text_pieces.append(" ")
        for name, value in attrs:
            if name in _LINK_ATTRIBUTES and value:
                url = url_host_and_path(value)
                if url:
                    self.urls.append(url)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._invisible_depth = max(0, self._invisible_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.text_pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._invisible_depth:
            self.text_pieces.append(data)
            self.character_count += len(data)


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
