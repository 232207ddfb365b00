"""Static pages at ``/pages/<slug>``, and ``site`` for every template."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from werkzeug.local import LocalProxy

from blog.pages import services

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _site() -> dict[str, object]:
    # A proxy: the settings are read (from the cache) only by a template that shows one, and
    # then once per request, so an Atom feed or a redirect costs nothing.
    return {"site": LocalProxy(services.current_site)}


@bp.route("/pages/<slug>")
def page(slug: str) -> str:
    page = services.get_page(slug) or abort(404)
    return render_template("pages/page.html", page=page)
