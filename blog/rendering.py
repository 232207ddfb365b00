"""Markdown to safe HTML, done once when a post or a page is saved.

markdown-it-py renders CommonMark (raw HTML in the source is shown as text, not passed
through); nh3 then sanitizes the result against an allowlist as a second line of defence,
so nothing but plain formatting, links and images reaches the page.

Posts show pictures from the site only: an image whose address is not one of the site's
stored images (``/uploads/<name>``) is written as a link to that address, its alt text as the
link's text, so the Content-Security-Policy (images from the site itself) never has to block
one. A site image gets its width and height (read from its name), lazy loading and a
``srcset`` of its stored sizes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import nh3
from flask import current_app, has_app_context
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from blog.images import fit, image_size, is_stored_name, thumbnail_name

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

#: How wide a picture is shown at most (the post column), for the browser's choice in srcset.
IMAGE_SIZES = "(max-width: 45rem) 100vw, 45rem"


def _site_image(src: str) -> str | None:
    """The stored image name an image address points at, when it is one of the site's:
    ``/uploads/<name>``, or the same under ``SITE_URL``; None for anything else."""
    parts = urlsplit(src)
    if parts.scheme or parts.netloc:
        site = urlsplit(current_app.config["SITE_URL"]) if has_app_context() else None
        if site is None or (parts.scheme, parts.netloc) != (site.scheme, site.netloc):
            return None
    if parts.query or parts.fragment or not parts.path.startswith("/uploads/"):
        return None
    name = parts.path.removeprefix("/uploads/")
    return name if is_stored_name(name) else None


def _render_image(renderer: RendererHTML, tokens: Sequence[Token], idx: int,
                  options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    name = _site_image(src)
    if name is None:
        # Not the site's: the alt text (or the address) as a link to it, never an <img>.
        return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'
    width, height = image_size(name)
    thumb_width = fit((width, height), int(current_app.config["THUMBNAIL_SIZE"]))[0]
    title = token.attrGet("title")
    return (f'<img src="/uploads/{name}" alt="{html.escape(alt)}"'
            + (f' title="{html.escape(str(title))}"' if title else "")
            + f' width="{width}" height="{height}" loading="lazy" decoding="async"'
            f' srcset="/uploads/{thumbnail_name(name)} {thumb_width}w, /uploads/{name} {width}w"'
            f' sizes="{IMAGE_SIZES}">')


def _image_rule(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    return _render_image(self, tokens, idx, options, env)


_markdown.add_render_rule("image", _image_rule)

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code",
    "em", "strong", "del", "s", "a", "img", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    # width, height, loading, decoding, srcset and sizes only ever come from _render_image:
    # Markdown's image syntax gives a source no way to set them.
    "img": {"src", "alt", "title", "width", "height", "loading", "decoding", "srcset", "sizes"},
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
