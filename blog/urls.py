"""Absolute links for emails and feeds, from ``SITE_URL``: never from the request's ``Host``
header, which a client chooses (a forged one would put an attacker's host into a password
reset link)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, current_app, g, request, url_for
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


#: Stands in for the value while url_for builds a link's fixed parts (quoted as "%00").
_PLACEHOLDER, _QUOTED_PLACEHOLDER = "\x00", "%00"
#: What werkzeug's default converter leaves unquoted in a path segment.
_SEGMENT_SAFE = "!$&'()*+,/:;=@"
#: An odd value whose quoting tells whether an endpoint's converter quotes as the default does.
_PROBE = "a b/é%?#"


def path_to(endpoint: str, **value: Any) -> str:
    """``url_for(endpoint, name=value)`` for an endpoint with one plain string argument, for
    links a list repeats on every row (``path_to('blog.post', slug=post.slug)``).

    ``url_for`` resolves the endpoint, runs the URL defaults and walks the rule for every
    link: a page of 20 posts spent a sixth of its time there. This calls it once per endpoint
    and request (app context), keeps the parts before and after the value, and quotes each
    value as werkzeug's default converter does. An endpoint whose rule converts differently
    (checked against ``url_for`` once) falls back to ``url_for``."""
    (name, argument), = value.items()
    parts: dict[tuple[str, str], tuple[str, str] | None] | None = g.get("_path_parts")
    if parts is None:
        parts = g._path_parts = {}
    key = (endpoint, name)
    if key not in parts:
        parts[key] = _fixed_parts(endpoint, name)
    found = parts[key]
    if found is None:
        return url_for(endpoint, **value)
    return f"{found[0]}{quote(str(argument), safe=_SEGMENT_SAFE)}{found[1]}"


def _fixed_parts(endpoint: str, name: str) -> tuple[str, str] | None:
    values: dict[str, Any] = {name: _PLACEHOLDER}
    try:
        built = url_for(endpoint, **values)
    except ValueError:  # a converter that takes no such text (an integer's)
        return None
    before, placeholder, after = built.partition(_QUOTED_PLACEHOLDER)
    if not placeholder or _QUOTED_PLACEHOLDER in after:
        return None
    values[name] = _PROBE
    probe = url_for(endpoint, **values)
    return (before, after) if probe == f"{before}{quote(_PROBE, safe=_SEGMENT_SAFE)}{after}" else None


def register(app: Flask) -> None:
    """``{{ site_url('blog.post', slug=post.slug) }}``, ``{{ canonical_url() }}`` and
    ``{{ path_to('blog.tag', name=tag.name) }}`` in templates."""
    app.add_template_global(site_url)
    app.add_template_global(canonical_url)
    app.add_template_global(path_to)
    # Requests can share an app context (a test's, a CLI command's): path_to's parts are
    # the request's own (its SCRIPT_NAME), so each request starts without them.
    app.before_request(_forget_path_parts)


def _forget_path_parts() -> None:
    g.pop("_path_parts", None)
