"""Conditional GET for what visitors read: pages that are the same for every visitor carry an
``ETag`` (a digest of the page), and a browser or proxy that already holds that version gets
``304 Not Modified`` with no body. A new post, comment or price changes the page, and so its
digest, so nobody is shown an old page: ``Cache-Control: no-cache`` makes every use ask again.

Only for requests with no session or remember cookie and responses that set none: a member's
page, or a visitor's with a cart or a message waiting to be shown, is never answered 304.
"""

from __future__ import annotations

from flask import current_app, g, request
from werkzeug.wrappers import Response

#: The pages everyone sees alike: lists, posts, products, static pages, feeds, the sitemap.
VISITOR_ENDPOINTS = frozenset({
    "blog.index", "blog.tag", "blog.profile", "blog.search", "blog.post",
    "blog.atom", "blog.tag_atom", "blog.user_atom",
    "shop.index", "shop.product", "pages.page", "sitemap.sitemap", "sitemap.part", "sitemap.robots",
})


def conditional_for_visitors(response: Response) -> Response:
    """Add an ETag to a visitor's page and answer 304 when the request already has it."""
    config = current_app.config
    if (request.method not in ("GET", "HEAD") or response.status_code != 200
            or request.endpoint not in VISITOR_ENDPOINTS or response.direct_passthrough
            or "Set-Cookie" in response.headers
            or request.cookies.get(config["SESSION_COOKIE_NAME"])
            or request.cookies.get(config.get("REMEMBER_COOKIE_NAME", "remember_token"))):
        return response
    response.add_etag()
    # Lists served from the fragment cache know when they were rendered: nothing in them
    # changed since, so a client that only speaks If-Modified-Since gets its 304 too.
    rendered_at = g.get("content_rendered_at")
    if rendered_at is not None:
        response.last_modified = rendered_at
    response.headers.setdefault("Cache-Control", "no-cache")
    return response.make_conditional(request)
