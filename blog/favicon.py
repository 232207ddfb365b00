"""``/favicon.ico``: browsers ask for it on every site whatever the page links, so answer it
(with the SVG icon base.html links) instead of filling the logs with 404s."""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory
from werkzeug.wrappers import Response

from blog.extensions import limiter

bp = Blueprint("favicon", __name__)


@bp.route("/favicon.ico")
@limiter.exempt
def favicon() -> Response:
    """The site's icon, cached for a day."""
    assert current_app.static_folder is not None
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml",
                               max_age=86400)
