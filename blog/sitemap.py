"""``/sitemap.xml`` and ``/robots.txt``: what search engines may read, and where.

The sitemap lists what everyone may see (published posts whose time has come, tags that have
such posts, active products, the static pages, the home and shop pages), each with its last change, in a fixed
number of statements whatever the size. Above ``SITEMAP_MAX_URLS`` addresses (the protocol
allows 50,000 per file) ``/sitemap.xml`` becomes an index of ``/sitemap-<n>.xml`` parts.

Like the admin and the commands, this module reads several domains; none imports it.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, make_response, render_template
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from blog.database import utcnow
from blog.extensions import db
from blog.pages.models import Page
from blog.posts import services as posts
from blog.posts.models import Post, Tag, post_tags
from blog.replica import reads_from_replica
from blog.shop.models import Product, Variant
from blog.urls import site_url

bp = Blueprint("sitemap", __name__)

Entry = tuple[str, datetime | None]


def entries() -> list[Entry]:
    """Every address for the sitemap with its last change, newest posts first."""
    public = posts.public_condition()
    rows: list[Entry] = [(site_url("blog.index"), None), (site_url("shop.index"), None)]
    rows += [(site_url("blog.post", slug=slug), updated) for slug, updated in db.session.execute(
        select(Post.slug, Post.updated_at).where(public)
        .order_by(Post.published_at.desc(), Post.id.desc()))]
    rows += [(site_url("blog.tag", name=name), updated) for name, updated in db.session.execute(
        select(Tag.name, func.max(Post.updated_at)).join(post_tags, post_tags.c.tag_id == Tag.id)
        .join(Post, Post.id == post_tags.c.post_id).where(public)
        .group_by(Tag.name).order_by(Tag.name))]
    sellable = select(Variant.id).where(Variant.product_id == Product.id).exists()
    rows += [(site_url("shop.product", slug=slug), updated) for slug, updated in db.session.execute(
        select(Product.slug, Product.updated_at).where(Product.active.is_(True), sellable)
        .order_by(Product.name, Product.id))]
    rows += [(site_url("pages.page", slug=slug), updated) for slug, updated in db.session.execute(
        select(Page.slug, Page.updated_at).order_by(Page.slug))]
    return rows


def _xml(template: str, **context: object) -> Response:
    response = make_response(render_template(template, **context))
    response.mimetype = "application/xml"
    return response


@bp.route("/sitemap.xml")
@reads_from_replica
def sitemap() -> Response:
    """The whole sitemap, or the index of its parts when it is too long for one file."""
    rows, limit = entries(), int(current_app.config["SITEMAP_MAX_URLS"])
    if len(rows) <= limit:
        return _xml("sitemap.xml", entries=rows)
    parts = [rows[start:start + limit] for start in range(0, len(rows), limit)]
    return _xml("sitemap_index.xml", parts=[
        (site_url("sitemap.part", part_id=n), max((t for _, t in part if t), default=utcnow()))
        for n, part in enumerate(parts, start=1)])


@bp.route("/sitemap-<id:part_id>.xml")
@reads_from_replica
def part(part_id: int) -> Response:
    """One part of a sitemap too long for one file (1, 2, ...)."""
    rows, limit = entries(), int(current_app.config["SITEMAP_MAX_URLS"])
    chunk = rows[(part_id - 1) * limit:part_id * limit]
    if not chunk or len(rows) <= limit:
        abort(404)
    return _xml("sitemap.xml", entries=chunk)


@bp.route("/robots.txt")
def robots() -> Response:
    """Crawl everything public; not the admin, the account pages or anyone's cart and orders."""
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in (
        "/admin/", "/auth/", "/shop/cart", "/shop/checkout", "/shop/orders")),
        "", f"Sitemap: {site_url('sitemap.sitemap')}", ""]
    response = make_response("\n".join(lines))
    response.mimetype = "text/plain"
    return response
