"""Blog pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("blog", __name__)


@bp.route("/")
def index() -> str:
    """The home page: the newest published posts (the blog issue fills this list)."""
    return render_template("blog/index.html")
