"""Serving stored images at ``/uploads/<name>``, and the template globals that point at them.

The files are written and checked by :mod:`blog.images`; this module only hands them
back, so a page never reaches the disk with a name that module did not make.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import Blueprint, abort, current_app, send_from_directory, url_for
from werkzeug.wrappers import Response

from blog.extensions import limiter
from blog.images import image_size, is_served_name, is_stored_name, thumbnail_name, upload_folder
from blog.text import describe_bytes

bp = Blueprint("images", __name__)

#: Browsers may keep a served image for a year without asking again: a name is random and
#: never reused, so the file behind a URL never changes.
CACHE_CONTROL = "public, max-age=31536000, immutable"


class StoredImage(NamedTuple):
    """What an ``<img>`` needs: its URL and its size in pixels."""

    url: str
    width: int
    height: int


@bp.app_template_global()
def upload_limit() -> str:
    """``{{ upload_limit() }}``: the largest image accepted, for people ("5 MB")."""
    return describe_bytes(int(current_app.config["UPLOAD_MAX_BYTES"]))


@bp.app_template_global()
def image_url(name: str, *, thumb: bool = False) -> str:
    """``{{ image_url(product.image, thumb=True) }}``: the URL of a stored image or of its
    thumbnail. Raises ValueError when ``name`` is not a stored image name."""
    if not is_stored_name(name):
        raise ValueError(f"not a stored image name: {name!r}")
    return url_for("images.serve", name=thumbnail_name(name) if thumb else name)


@bp.app_template_global()
def stored_image(name: str | None, *, thumb: bool = False) -> StoredImage | None:
    """``{% set image = stored_image(product.image, thumb=True) %}``: URL, width and height
    of a product's image, or None when it has none.

    A value that is not a stored name (typed into the database by hand, say) also gives
    None, so a page shows no picture rather than a broken one or an error.
    """
    if not is_stored_name(name):
        return None
    width, height = image_size(name, thumb=thumb)
    return StoredImage(image_url(name, thumb=thumb), width, height)


@bp.route("/uploads/<name>")
@limiter.exempt  # like static files: a catalogue page loads a dozen at once
def serve(name: str) -> Response:
    """A stored image or thumbnail, cacheable for a year. Anything but a stored name is 404
    without looking at the disk; no database, no session."""
    if not is_served_name(name):
        abort(404)
    response = send_from_directory(upload_folder(), name, mimetype="image/webp")
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
