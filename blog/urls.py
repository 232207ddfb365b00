"""Absolute links for emails and feeds, from ``SITE_URL``: never from the request's ``Host``
header, which a client chooses (a forged one would put an attacker's host into a password
reset link)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, current_app, g, request
from werkzeug.routing import MapAdapter


def site_url(endpoint: str, **values: Any) -> str:
    """``site_url("auth.reset_password", token=t)``: the absolute URL of an endpoint on the
    site at ``SITE_URL`` (scheme, host and any path prefix), with or without a request.
    ``_anchor`` adds a fragment, as with ``url_for``."""
    anchor = values.pop("_anchor", None)
    url = _adapter().build(endpoint, values, force_external=True)
    return f"{url}#{quote(str(anchor), safe='-_.')}" if anchor is not None else url


def _adapter() -> MapAdapter:
    """The URL map bound to ``SITE_URL``, made once per app context (a sitemap builds
    thousands of links)."""
    adapter: MapAdapter | None = g.get("_site_url_adapter")
    if adapter is None:
        parts = urlsplit(current_app.config["SITE_URL"])
        adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path.rstrip("/") or "/",
                                           url_scheme=parts.scheme)
        g._site_url_adapter = adapter
    return adapter


def site_host() -> str:
    """The host name of ``SITE_URL`` (Message-IDs, the default sender's address)."""
    return urlsplit(current_app.config["SITE_URL"]).hostname or "localhost"


#: Where the pages domain puts the function giving the site's current settings (the factory
#: does), so that lower domains (mail, accounts) name the site as its admin last set it.
SITE_SETTINGS = "inkwell.site_settings"


def site_name() -> str:
    """The site's title, as set in /admin/settings (``SITE_NAME`` by default)."""
    current = current_app.extensions.get(SITE_SETTINGS)
    return str(current().title) if current is not None else str(current_app.config["SITE_NAME"])


def check_site_url(app: Flask) -> str | None:
    """A problem with ``SITE_URL`` for the factory to refuse, or None when it is usable."""
    value = app.config.get("SITE_URL")
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment:
        return (f"SITE_URL must be the site's address such as https://example.com (scheme and "
                f"host, optionally a path), not {value!r}.")
    return None


#: Query arguments that make a different page of the same list (kept in canonical links);
#: anything else (tracking, typos) is left out.
CANONICAL_ARGS = ("page", "q", "category", "sort", "status")


def canonical_url() -> str | None:
    """The absolute address of the page being served, from ``SITE_URL``, with only the
    query arguments that choose what it shows; None for an error page (a page concealed
    with a 404 must look exactly like a missing one)."""
    if request.url_rule is None or request.endpoint is None or g.get("error_page"):
        return None
    values: dict[str, Any] = dict(request.view_args or {})
    values.update((name, request.args[name]) for name in CANONICAL_ARGS
                  if request.args.get(name) and name not in values)
    if values.get("page") == "1":
        del values["page"]
    return site_url(request.endpoint, **values)


def register(app: Flask) -> None:
    """``{{ site_url('blog.post', slug=post.slug) }}`` and ``{{ canonical_url() }}`` in
    templates."""
    app.add_template_global(site_url)
    app.add_template_global(canonical_url)
