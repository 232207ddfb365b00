"""Markdown to safe HTML, done once when a post is saved.

markdown-it-py renders CommonMark (raw HTML in the source is shown as text, not passed
through); nh3 then sanitizes the result against an allowlist as a second line of defence,
so nothing but plain formatting, links and images reaches the page.
"""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code",
    "em", "strong", "del", "s", "a", "img", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    link_rel="nofollow noopener",
    strip_comments=True,
)
_text_only = nh3.Cleaner(tags=set(), attributes={})


def render_markdown(source: str) -> str:
    """Render Markdown and sanitize the HTML (no scripts, event handlers or unsafe URLs)."""
    return _scrollable(_cleaner.clean(_markdown.render(source)))


def _scrollable(body_html: str) -> str:
    """Let wide code blocks and tables scroll inside their own box, reachable by keyboard.

    A box that scrolls must be focusable, or keyboard users cannot scroll it. Added after
    sanitizing (the source cannot set these attributes), to the sanitizer's own plain tags.
    """
    body_html = body_html.replace("<pre>", '<pre tabindex="0">')
    body_html = body_html.replace(
        "<table>", '<div class="scroll" tabindex="0" role="region" aria-label="Table"><table>'
    )
    return body_html.replace("</table>", "</table></div>")


def excerpt_of(body_html: str, length: int = 280) -> str:
    """Plain text of rendered HTML, cut at a word boundary near ``length`` characters."""
    text = html.unescape(_text_only.clean(body_html))
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= length:
        return text
    cut = text[:length].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:-") + "…"
