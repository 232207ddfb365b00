"""Reading pages and the site's settings, and the cache that keeps every page from asking.

Every page shows the site's title, the links to the pages in the navigation and the footer,
and the footer's text: two statements a request if read from the database each time. They
are read once into a :class:`Site` snapshot kept in the cache (``blog.extensions.cache``:
Redis, or files shared by one machine's workers) until a write forgets it, right after its
commit; ``CACHE_DEFAULT_TIMEOUT`` bounds how long a snapshot filled by a request that read
just before that commit can linger. Within a request the snapshot is read once (``g``).

Writing (with the admin's audit trail) is in :mod:`blog.admin.services`; this module gives it
what to check and render, and :func:`forget_site` to call after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g
from sqlalchemy import Select, select

from blog.errors import ServiceError
from blog.extensions import cache, db
from blog.pages.models import Page, SiteSetting
from blog.rendering import excerpt_of, render_markdown
from blog.text import slugify, xml_safe

log = logging.getLogger("inkwell.pages")

_CACHE_KEY = "site"
_G_KEY = "inkwell_site"

MAX_SOCIAL_LINKS = 10


class PageError(ServiceError):
    """A page or a setting that cannot be saved; ``field`` names the form field."""


@dataclass(frozen=True)
class Link:
    """A link as the navigation, the footer or the social links show it."""

    label: str
    url: str


@dataclass(frozen=True)
class PageLink:
    """A page linked from the navigation or the footer."""

    slug: str
    title: str


@dataclass(frozen=True)
class Site:
    """What every page shows of the site: its settings and its linked pages."""

    title: str
    tagline: str
    description: str
    footer: str
    social_links: tuple[Link, ...]
    nav_pages: tuple[PageLink, ...]
    footer_pages: tuple[PageLink, ...]


#: Each setting an admin may change, with the configuration value it defaults to.
SETTINGS = {
    "title": "SITE_NAME",
    "tagline": "SITE_TAGLINE",
    "description": "SITE_DESCRIPTION",
    "footer": "SITE_FOOTER",
    "social_links": "SITE_SOCIAL_LINKS",
}


# --- the site snapshot -----------------------------------------------------------------------


def current_site() -> Site:
    """The site's settings and linked pages: from this request's copy, else the cache, else the
    database (then cached). A cache that fails (Redis gone) is passed by, never an error."""
    site: Site | None = g.get(_G_KEY)
    if site is not None:
        return site
    try:
        site = cache.get(_CACHE_KEY)
    except Exception:
        log.warning("the cache cannot be read; reading the site settings from the database",
                    exc_info=True)
        site = None
    if not isinstance(site, Site):
        site = _load_site()
        try:
            cache.set(_CACHE_KEY, site)
        except Exception:
            log.warning("the cache cannot be written", exc_info=True)
    setattr(g, _G_KEY, site)
    return site


def forget_site() -> None:
    """Drop the cached snapshot (after a commit that changed settings or linked pages), so
    the next request anywhere reads the new values."""
    g.pop(_G_KEY, None)
    try:
        cache.delete(_CACHE_KEY)
    except Exception:
        # A Redis that is down keeps the old snapshot until it is back and the entry times out.
        log.warning("the cache cannot be cleared; the old site settings show until "
                    "CACHE_DEFAULT_TIMEOUT passes", exc_info=True)


def setting_values() -> dict[str, str]:
    """Every setting's current value: the stored one, else the configuration's."""
    stored = {key: value for key, value in db.session.execute(select(SiteSetting.key, SiteSetting.value))}
    config = current_app.config
    return {key: stored[key] if key in stored else str(config.get(name) or "")
            for key, name in SETTINGS.items()}


def _load_site() -> Site:
    values = setting_values()
    linked = db.session.execute(
        select(Page.slug, Page.title, Page.place).where(Page.place.in_(("nav", "footer")))
        .order_by(Page.position, Page.title, Page.id)).all()
    return Site(
        title=values["title"], tagline=values["tagline"], description=values["description"],
        footer=values["footer"], social_links=tuple(parse_social_links(values["social_links"])),
        nav_pages=tuple(PageLink(row.slug, row.title) for row in linked if row.place == "nav"),
        footer_pages=tuple(PageLink(row.slug, row.title) for row in linked if row.place == "footer"),
    )


def parse_social_links(text: str) -> list[Link]:
    """``"Label https://address"`` lines as links. Raises PageError naming the first line that
    is not one (a web address after a label), or when there are too many."""
    links = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        label, _, url = line.rpartition(" ")
        label = label.strip()
        parts = urlsplit(url)
        if not label or parts.scheme not in ("http", "https") or not parts.netloc:
            raise PageError(f"Line {number}: write a name, a space and a web address "
                            "(Mastodon https://example.social/@us).", "social_links")
        if len(label) > 40 or len(url) > 300:
            raise PageError(f"Line {number} is too long (a name of at most 40 characters, "
                            "an address of at most 300).", "social_links")
        links.append(Link(label, url))
    if len(links) > MAX_SOCIAL_LINKS:
        raise PageError(f"Give at most {MAX_SOCIAL_LINKS} links.", "social_links")
    return links


# --- pages -------------------------------------------------------------------------------------


def get_page(slug: str) -> Page | None:
    return db.session.scalar(select(Page).where(Page.slug == slug))


def page_list() -> Select[Any]:
    """Every page, as the admin list shows them: navigation, footer, then unlinked; in order."""
    return select(Page).order_by(Page.place.desc(), Page.position, Page.title, Page.id)


@dataclass(frozen=True)
class PageContent:
    """A page's new content, its Markdown rendered outside any transaction."""

    title: str
    slug: str
    body: str
    body_html: str
    excerpt: str
    place: str
    position: int


def prepare_page(title: str, slug: str, body: str, place: str, position: int) -> PageContent:
    """Check and render what the page form gave. ``slug`` empty: made from the title (a slug
    another page has is the form's error when saving, not silently changed). Raises PageError
    for an empty title or body, or a slug that is not lower-case words and dashes."""
    title, body = xml_safe(title).strip(), xml_safe(body)
    if not title:
        raise PageError("Give the page a title.", "title")
    if not body.strip():
        raise PageError("Write the page's text.", "body")
    slug = xml_safe(slug).strip()
    if slug and slug != slugify(slug, max_length=100):
        raise PageError("Use lower-case letters, digits and dashes, such as "
                        f"“{slugify(slug, max_length=100)}”.", "slug")
    slug = slug or slugify(title, max_length=100)
    body_html = render_markdown(body)
    return PageContent(title, slug, body, body_html, excerpt_of(body_html), place, position)

