"""An HTML part → its visible text and the links in it.

Its own module, imported by mail.py only when a message has an HTML part:
html.parser and html.entities cost a one-message filter 2.4 ms of start-up,
and most ham has no HTML at all (188 of the SpamAssassin corpora's 4,150
ham messages have an HTML part, 1,022 of its 1,896 spam).

Two readers give the same text and links. HtmlTextParser is html.parser's
HTMLParser (pure Python, a dozen calls a tag). HtmlScanner reads the
markup of ordinary mail and the text between it a stretch at a time, with
one regular expression's split and a few more calls of C, and leaves the
rest (a tag written unusually, script and style, a tag cut short by a
piece's end) to HTMLParser's own methods, on its own state: what it has
read after each piece fed, text held back at a piece's end included, is
what HTMLParser has read, so a parse stopped early (see html_to_text) stops
with the same text. tests/test_fast_paths.py checks the two agree on
made-up markup cut into pieces of every size, and on every HTML part of the
corpora.
"""

from __future__ import annotations

import _markupbase
import binascii
import functools
import html.parser
import re
import urllib.parse
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser
from itertools import chain
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
    if _SCANNER_FOLLOWS_THE_PARSER:
        try:
            return _read_in_pieces(HtmlScanner(source), source, character_budget, wants_more)
        except Exception:
            # HTMLParser's own error (a marked section it cannot name), or a
            # fault of the scanner's: HTMLParser reads the part again from
            # the start, and stops where it stops.
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
        return parser.visible_text(), parser.urls, False


class _TextReader(Protocol):
    character_count: int
    urls: list[str]

    def feed(self, data: str) -> None: ...

    def close(self) -> None: ...

    def visible_text(self) -> str: ...


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
            text = reader.visible_text()
            if not wants_more(text):
                return text, reader.urls, True
            chunk = min(4 * chunk, _HTML_CHUNK_CHARACTERS)
    reader.close()
    return reader.visible_text(), reader.urls, False


# The markup HtmlScanner reads itself, in the patterns of html.parser
# (Python 3.11) for its parts, so that what matches is what HTMLParser
# makes of it; the rest is read by HTMLParser's own methods. None of it
# holds a "<" but its first character.
# - a start tag but script's and style's: its name, attributes each after
#   white space (a name, then perhaps "=" and a value, quoted or bare),
#   white space, ">" or "/>". HTMLParser reads more ("/" between
#   attributes, a tag cut short by a piece's end). Possessive, so that no
#   attribute is read in two ways.
_TAG_NAME = r"[a-zA-Z][^\t\n\r\f />\x00<]*+"
# An attribute: white space before it, or none right after a quoted value;
# its name; perhaps "=" and a value.
_ATTRIBUTE_PATTERN = (
    r"(?:\s++|(?<=['\"]))({group}[^\s/><][^\s/=><]*+)"
    r"(?:\s*+=++\s*+({group}'[^'<]*+'|\"[^\"<]*+\"|(?!['\"])[^>\s<]*+))?+"
)
# An attribute's name and its value.
_ATTRIBUTE = re.compile(_ATTRIBUTE_PATTERN.format(group=""))
# Split at its markup, a stretch of the source gives the text between, and
# for each piece of markup three groups: 1, an end tag's "/" and name or a
# start tag's name (None for other markup); 2, a start tag's attributes,
# white space first (a tag named up to a quote can have "\x00" for its
# first attribute's name: HTMLParser reads it); 3, what follows the "<" of
# markup the pattern does not read, to the end (HTMLParser reads it). The
# pattern begins with "<", so that a search looks at the "<"s alone; and
# ".*" of DOTALL takes no time (the engine goes to the end at once).
_MARKUP = re.compile(
    "<(?:("
    # - an end tag, as endtagfind reads it (it ends at the first ">");
    + r"/\s*+[a-zA-Z][-.a-zA-Z0-9:_]*+(?=\s*+>)"
    + r"|(?!(?ai:script|style)(?![^\t\n\r\f />\x00<]))"
    + rf"{_TAG_NAME})(?:\s*+>|((?:(?=\s)(?:{_ATTRIBUTE_PATTERN.format(group='?:')})*+)?+)\s*+/?>)"
    # - a comment, to _markupbase's end of one; a declaration, a bogus
    #   comment, a processing instruction, to the next ">": all unseen.
    + r"|!--(?s:.)*?--\s*>|!(?!--|\[)[^>]*+>|\?[^>]*+>"
    + r"|((?s:.*)))"
)


# What the caches below keep is bounded, for the daemon that keeps them as
# long as it runs: 4,096 tag names, 2,048 attribute strings and 1,024 links
# at most, each of at most this many characters (7 MB in all, under 1 MiB
# on the SpamAssassin corpora); longer ones are read each time.
_MAX_CACHED_MARKUP_CHARACTERS = 1024


class _SpaceOfTag(dict[str | None, str]):
    """_MARKUP's first group → the white space the tag adds to the text."""

    def __missing__(self, name: str | None) -> str:
        space = " " if name and name.lstrip("/").lstrip().lower() in _BLOCK_TAGS else ""
        # A name made up to be long is not kept: the daemon keeps this
        # for as long as it runs.
        if len(self) < 4096 and (name is None or len(name) <= _MAX_CACHED_MARKUP_CHARACTERS):
            self[name] = space
        return space


_SPACE_OF_TAG = _SpaceOfTag()


class _LinksOfAttributes(dict[str, tuple[str, ...]]):
    """A start tag's attributes (white space first) → the links in them.

    The same attributes come again and again: 18,475 different ones of the
    68,990 in the SpamAssassin corpora's HTML parts as the scorer reads them
    (8,897 of the 19,125 with a link). html_to_text over those parts took
    220 ms with it, 228 ms reading the attributes of each tag that has
    "href" or "src" in them (that test in C), 250 ms one tag at a time.
    """

    def __missing__(self, attributes: str) -> tuple[str, ...]:
        links = []
        lowered = attributes.lower()  # only a name lower-cased counts
        if "href" in lowered or "src" in lowered:
            for name, value in _ATTRIBUTE.findall(attributes):
                if value and name.lower() in _LINK_ATTRIBUTES:
                    if value[0] in "\"'":
                        value = value[1:-1]
                    url = url_host_and_path(unescape(value))
                    if url:
                        links.append(url)
        found = tuple(links)
        if len(attributes) <= _MAX_CACHED_MARKUP_CHARACTERS:
            if len(self) >= 2048:
                self.clear()
            self[attributes] = found
        return found


_LINKS_OF_ATTRIBUTES = _LinksOfAttributes()
_STARTS_TAG = re.compile(r"<[a-zA-Z]")  # html.parser's starttagopen
# The end of script and style, as HTMLParser.set_cdata_mode's. It ends them
# only when endtagfind reads it too: case-insensitive, it also matches
# "</\u017fcript>" (a long s), which HTMLParser takes for text in the script.
_CONTENT_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in _INVISIBLE_TAGS}
# Text at the end of a piece is held back while an "&" in its last 34
# characters has neither white space nor ";" after it: the rest of a
# character reference may follow (HTMLParser's rule).
_HELD_TEXT_CHARACTERS = 34
_SPACE_OR_SEMICOLON = re.compile(r"[\s;]")


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

    def visible_text(self) -> str:
        """The text collected so far, its white space made single spaces."""
        return " ".join("".join(self.text_pieces).split())

    def _data(self, data: str) -> None:
        if not self._invisible_depth:
            self.text_pieces.append(data)
            self.character_count += len(data)

    def _link(self, value: str) -> None:
        """An href or src attribute's value, entities unescaped."""
        url = url_host_and_path(value)
        if url:
            self.urls.append(url)


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


def _parser_fingerprint() -> int:
    """A checksum of the html.parser code and patterns HtmlScanner follows
    or calls, and of html.unescape."""
    methods: tuple[Callable[..., object], ...] = (
        HTMLParser.goahead,
        HTMLParser.close,
        HTMLParser.parse_starttag,
        HTMLParser.check_for_whole_start_tag,
        HTMLParser.parse_endtag,
        HTMLParser.parse_html_declaration,
        HTMLParser.parse_bogus_comment,
        HTMLParser.parse_pi,
        HTMLParser.set_cdata_mode,
        HTMLParser.clear_cdata_mode,
        _markupbase.ParserBase.parse_comment,
        unescape,
    )
    code = b"".join(
        method.__code__.co_code + " ".join(method.__code__.co_names).encode() for method in methods
    )
    patterns = [
        vars(module)[name]
        for module, names in (
            (
                html.parser,
                "interesting_normal starttagopen tagfind_tolerant attrfind_tolerant"
                " locatestarttagend_tolerant endendtag endtagfind piclose",
            ),
            (_markupbase, "_commentclose"),
            (html, "_charref"),
        )
        for name in names.split()
    ]
    return binascii.crc32(code + "\n".join(pattern.pattern for pattern in patterns).encode())


# HtmlScanner follows html.parser as Python 3.11.7 has it (later releases
# read comments and script differently); with any other, HTMLParser reads
# every part. 4 µs at import.
PARSER_FINGERPRINT_OF_PYTHON_3_11_7 = 0xCF0608C6
_SCANNER_FOLLOWS_THE_PARSER = _parser_fingerprint() == PARSER_FINGERPRINT_OF_PYTHON_3_11_7


class HtmlScanner(HtmlTextParser):
    """The visible text and href/src links of SOURCE, read from the pieces
    fed (the start of SOURCE, one piece after another) as HtmlTextParser
    reads them.

    Ordinary markup and the text between it are read a stretch at a time
    (see _read_stretch), in a few calls of C; the markup that ends a stretch
    is read by HTMLParser's own methods (parse_starttag and the others, as
    its goahead calls them), script and style by its pattern of their end,
    and what is left at the end by its goahead: the parser's state (what it
    holds back, within script or style or not) is the scanner's at every
    step.

    The SpamAssassin corpora's 1,169 HTML parts as the scorer reads them
    (stopping early) took html_to_text 0.22 s here, against 0.45 s with the
    scanner before it (a regular expression and a few calls a tag) and
    0.70 s with HTMLParser alone (the calls replayed, five runs of each);
    none is read again by HTMLParser, and HTMLParser's methods read 1,087
    pieces of markup in 632 of them (most the start of script or style),
    468 in 312 of CSDMC2010's 479.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self._read = 0  # SOURCE[:_read] is handled
        self._fed = 0  # SOURCE[:_fed] has been fed
        self.markup_read_by_the_parser = 0
        # The visible text of text_pieces[:_pieces_in_text], and whether
        # those end in white space (else a piece after may go on with their
        # last word).
        self._text = ""
        self._pieces_in_text = 0
        self._after_space = False

    def feed(self, data: str) -> None:
        self._fed += len(data)
        self._read = self._scan(self._read, self._fed)

    def close(self) -> None:
        # What is held back (text, markup cut short, script that never
        # ends), read as HTMLParser reads it at the end.
        self.rawdata = self.source[self._read : self._fed]
        self.goahead(True)
        self._read = self._fed

    def visible_text(self) -> str:
        # Only the pieces since the last call are split (the caller asks
        # after each piece fed): 22 ms on the SpamAssassin corpora's HTML
        # parts, against 28 ms for _VisibleText's.
        pieces = self.text_pieces
        new = "".join(pieces[self._pieces_in_text :])
        self._pieces_in_text = len(pieces)
        if new:
            text, new_text = self._text, " ".join(new.split())
            if not text:
                self._text = new_text
            elif new_text:
                # A word cut by the pieces' end goes on.
                joins_word = not self._after_space and not new[0].isspace()
                self._text = text + new_text if joins_word else text + " " + new_text
            self._after_space = new[-1].isspace()
        return self._text

    def _scan(self, position: int, end: int) -> int:
        """Read SOURCE from POSITION as far as HTMLParser reads it when fed
        up to END; return where that is."""
        source = self.source
        while position < end:
            if self.cdata_elem is not None:
                closing = _CONTENT_END[self.cdata_elem].search(source, position, end)
                if closing is None:
                    break  # HTMLParser waits for the end
                if closing.group().isascii():
                    self.handle_endtag(self.cdata_elem)
                    self.clear_cdata_mode()
                position = closing.end()
                continue
            stop = self._read_stretch(position, end)
            if stop == end or stop < 0:
                return end if stop == end else -stop - 1  # all read, or text held back
            markup_end = self._parse_markup(stop, end)
            if markup_end < 0:
                return stop  # HTMLParser waits for more
            position = markup_end
        return position

    def _read_stretch(self, start: int, end: int) -> int:
        """Read SOURCE[START:END] up to markup _MARKUP does not read; return
        where that is, END, or -1 - where text held back at END begins."""
        parts = _MARKUP.split(self.source[start:end])
        stop = end
        if len(parts) > 1 and parts[-2] is not None:
            # Markup for HTMLParser: the stretch stops before it.
            stop -= 1 + len(parts[-2])
            del parts[-4:]
        else:
            last = parts[-1]
            ampersand = last.rfind("&", max(0, len(last) - _HELD_TEXT_CHARACTERS))
            if ampersand >= 0 and not _SPACE_OR_SEMICOLON.search(last, ampersand):
                parts[-1] = ""  # held back, as HTMLParser holds it
                stop = -(end - len(last)) - 1
        texts = parts[::4]
        tags = len(texts) - 1
        if not tags and not texts[0]:
            return stop
        # The links of the start tags' attributes, in C for attributes seen
        # before.
        links = map(_LINKS_OF_ATTRIBUTES.__getitem__, filter(None, parts[2::4]))
        self.urls.extend(chain.from_iterable(links))
        if self._invisible_depth:
            return stop
        joined = "<".join(texts)
        if "&" in joined:
            # A character reference ends at "<": the text between two tags
            # is unescaped as HTMLParser unescapes it, unless a reference
            # unescapes to "<". "&nbsp;", 73 % of the references of the
            # SpamAssassin corpora's HTML parts, is replaced first, in C
            # (unescape calls a function a reference): the same text, as no
            # reference holds "\xa0" (a reference before it cut short by
            # "&" is read as far as before, and what follows it is kept).
            joined = unescape(joined.replace("&nbsp;", "\xa0"))
            if joined.count("<") == tags:
                parts[::4] = joined.split("<")
            else:
                parts[::4] = unescaped = [unescape(text) for text in texts]
                joined = "<".join(unescaped)  # only its length counts
        parts[1::4] = map(_SPACE_OF_TAG.__getitem__, parts[1::4])
        parts[2::4] = parts[3::4] = [""] * tags
        self.text_pieces.append("".join(parts))
        self.character_count += len(joined) - tags
        return stop

    def _parse_markup(self, start: int, end: int) -> int:
        """The markup at START read as HTMLParser.goahead reads it, given
        SOURCE[:END]: where it ends, or -1 when HTMLParser waits for more."""
        self.markup_read_by_the_parser += 1
        if len(self.rawdata) != end:
            self.rawdata = self.source[:end]
        rawdata = self.rawdata
        if _STARTS_TAG.match(rawdata, start):
            return self.parse_starttag(start)
        if rawdata.startswith("</", start):
            return self.parse_endtag(start)
        if rawdata.startswith("<!--", start):
            return self.parse_comment(start)
        if rawdata.startswith("<?", start):
            return self.parse_pi(start)
        if rawdata.startswith("<!", start):
            return self.parse_html_declaration(start)
        if start + 1 < end:
            self.handle_data("<")
            return start + 1
        return -1


# A link as most mail writes it, which urlsplit would split the same way:
# printable ASCII (nothing it removes or strips, no white space), a scheme
# (its first ":"), "//", a host of letters, digits, dots and hyphens alone
# (no user, port or brackets), then perhaps a path up to the first "?" or
# "#" and what follows: 1.1 µs a link, against 4.1 µs with urlsplit (the
# 10,434 links of the SpamAssassin corpora's HTML parts, 89 % of them plain).
_PLAIN_URL = re.compile(
    r"[a-zA-Z][a-zA-Z0-9+.-]*+://([a-zA-Z0-9.-]++)((?:/[!-\"$->@-~]*+)?+)(?:[?#][!-~]*+)?+"
)


def url_host_and_path(url: str) -> str | None:
    """``https://User@Www.Example.com:8080/a/b?id=42`` → ``www.example.com/a/b``.

    Only links with a host count: relative links, ``cid:`` images, ``data:``
    and ``mailto:`` say nothing about where the reader is sent. Kept for a
    link of up to _MAX_CACHED_MARKUP_CHARACTERS (1,024 of them at most).
    """
    if len(url) <= _MAX_CACHED_MARKUP_CHARACTERS:
        return _cached_host_and_path(url)
    return _host_and_path(url)


def _host_and_path(url: str) -> str | None:
    url = url.strip()
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        host, path = plain.groups()
        return host.lower() + path if path != "/" else host.lower()
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    path = parts.path if parts.path not in ("", "/") else ""
    return " ".join((host + path).split())


_cached_host_and_path = functools.lru_cache(maxsize=1024)(_host_and_path)
