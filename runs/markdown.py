"""Markdown that the model, an agent or a tool wrote, as HTML that is safe to put in the page.

Two layers, each enough on its own for what it covers:

1. markdown-it-py renders CommonMark (with tables and strikethrough) with raw HTML switched off,
   so ``<script>`` or ``<img onerror=…>`` in the text comes out as escaped text, and its own
   link check refuses ``javascript:``, ``vbscript:``, ``file:`` and most ``data:`` links.
2. nh3 (ammonia) then keeps an allow-list of tags, attributes and classes; links keep only
   ``http``, ``https`` and ``mailto`` URLs (relative ones are dropped: nothing the model wrote
   links into Handoff itself) and get ``rel="noopener nofollow noreferrer"``.

No ``<img>`` survives either layer: an image in the Markdown (``![alt](url)``) becomes a link
to its URL, so the page never loads anything from a URL the model chose (the
Content-Security-Policy's ``img-src`` would refuse it too).

Citation marks (``[n]`` after the cited words, from ``url_citation`` annotations) are placed in
the text before it is parsed as placeholders the text cannot contain (they carry a random
nonce), and turned into ``<sup class="cite">`` in text only, never inside a URL, code or an
attribute; a mark that lands anywhere else is shown after the text.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

# Longer texts are shown as plain text: markdown-it-py is pure Python, and one step must not make
# the page slow to render (this many characters of a report take about half a second of one core).
MAX_MARKDOWN_CHARS = 100_000
# Rendered texts kept per process: the run page shows a run's output twice (header and timeline),
# and a recorded text never changes.
CACHED_TEXTS = 64

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "sup",
})
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALIGNMENTS = {"align-left", "align-center", "align-right"}
CLASSES = {
    "sup": {"cite"}, "p": {"cites-elsewhere"}, "a": {"md-image"},
    "th": ALIGNMENTS, "td": ALIGNMENTS,
}

_SANITIZER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    attributes=ATTRIBUTES,
    allowed_classes=CLASSES,
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener nofollow noreferrer",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def _image(renderer, tokens: Sequence[Token], idx: int, options, env) -> str:
    """An image as a link to its URL, labelled with its alt text: never an ``<img>``."""
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))
    src = escapeHtml(str(token.attrGet("src") or ""))
    return f'<a class="md-image" href="{src}">image: {escapeHtml(alt) or "(no description)"}</a>'


_MD = MarkdownIt("commonmark", {"html": False, "breaks": True, "typographer": False}).enable(["table", "strikethrough"])
_MD.add_render_rule("image", _image)

# What markdown-it puts on a table cell for its column's alignment (an inline style, which the
# Content-Security-Policy refuses): turned into a class.
_ALIGN = re.compile(r"^text-align:(left|center|right)$")


def to_html(segments: Sequence[tuple[str, Sequence[int]]]) -> SafeString:
    """The Markdown of ``segments`` joined, as sanitized HTML.

    ``segments`` is the text cut where citations end, ``[(text, [citation numbers])]`` as
    ``runs.templatetags.steps.cited_segments`` gives it: each number becomes
    ``<sup class="cite">[n]</sup>`` right after its segment's text (or after the whole text when
    the segment ends inside a URL, code or an element the sanitizer drops).

    The result holds only the tags of ``TAGS``, the attributes of ``ATTRIBUTES`` and the classes
    of ``CLASSES``, links only to http(s) and mailto URLs, with ``target="_blank"`` and
    ``rel="noopener nofollow noreferrer"``. Raises nothing for any text (the parser accepts
    every string).
    """
    return mark_safe(_render(tuple((text, tuple(numbers)) for text, numbers in segments)))


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _render(segments: tuple[tuple[str, tuple[int, ...]], ...]) -> str:
    nonce = secrets.token_hex(6)
    marks: list[Sequence[int]] = []
    source = []
    for text, numbers in segments:
        if not numbers:
            source.append(text)
            continue
        # Before the whitespace that ends the segment, so a mark never starts the next line
        # (where it would undo a heading or a list item).
        words = text.rstrip()
        source += [words, f"⟦{nonce}:{len(marks)}⟧", text[len(words):]]
        marks.append(numbers)
    env: dict = {}
    tokens = _MD.parse("".join(source), env)
    placed: set[int] = set()
    placeholder = re.compile(rf"(?:⟦|%E2%9F%A6){nonce}:(\d+)(?:⟧|%E2%9F%A7)")
    _place_marks(tokens, placeholder, marks, placed)
    html = _MD.renderer.render(tokens, _MD.options, env)
    rest = [number for index, numbers in enumerate(marks) if index not in placed for number in numbers]
    if rest:
        html += f'<p class="cites-elsewhere">{"".join(_sup(n) for n in rest)}</p>'
    # The placeholders are unguessable, so any left (a link reference definition swallows its
    # URL) are Handoff's own: removed so they never show.
    return placeholder.sub("", _SANITIZER.clean(html))


def _sup(number: int) -> str:
    return f'<sup class="cite">[{int(number)}]</sup>'


def _place_marks(tokens: list[Token], placeholder: re.Pattern, marks: list[Sequence[int]], placed: set[int]) -> None:
    """Turn the placeholders in text tokens into citation marks (``placed`` records which) and
    strip them from everything else: code, URLs, titles, alt texts. Table cells' alignment
    styles become classes."""
    for token in tokens:
        if token.type in ("th_open", "td_open"):
            align = _ALIGN.match(str(token.attrGet("style") or ""))
            token.attrs.pop("style", None)
            if align:
                token.attrSet("class", f"align-{align.group(1)}")
        if token.type == "inline" and token.children:
            children: list[Token] = []
            for child in token.children:
                if child.type == "text":
                    children.extend(_split_text(child, placeholder, marks, placed))
                    continue
                _strip(child, placeholder)
                children.append(child)
            token.children = children
        else:
            _strip(token, placeholder)


def _split_text(token: Token, placeholder: re.Pattern, marks: list[Sequence[int]], placed: set[int]) -> list[Token]:
    pieces, start = [], 0
    for found in placeholder.finditer(token.content):
        index = int(found.group(1))
        if found.start() > start:
            pieces.append(_text(token.content[start:found.start()]))
        if index < len(marks):
            mark = Token("html_inline", "", 0)
            mark.content = "".join(_sup(n) for n in marks[index])
            pieces.append(mark)
            placed.add(index)
        start = found.end()
    if not pieces:
        return [token]
    if start < len(token.content):
        pieces.append(_text(token.content[start:]))
    return pieces


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _strip(token: Token, placeholder: re.Pattern) -> None:
    token.content = placeholder.sub("", token.content)
    for name, value in list(token.attrs.items()):
        if isinstance(value, str):
            token.attrs[name] = placeholder.sub("", value)
    for child in token.children or []:
        _strip(child, placeholder)
