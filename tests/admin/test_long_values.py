"""The longest value every admin-facing form accepts is stored, audit trail included (the
audit event copies slugs and names, so its column must be as long as the longest of them)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from blog.admin.models import AuditEvent
from blog.extensions import db
from blog.posts.models import Post
from blog.shop.models import Product, ShippingMethod
from tests.conftest import csrf_token


def _audited(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [(e.entity_type, e.action, e.entity_id)
                for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_unpublishing_a_post_with_the_longest_title(app: Flask, client: Any, admin: Any) -> None:
    title = "Word " * 39 + "last."  # 200 characters: the form's limit
    assert len(title) == 200
    response = client.post("/posts/new", data={"csrf_token": csrf_token(client, "/posts/new"),
                                               "title": title, "body": "Text.", "publish": "y"})
    assert response.status_code == 302
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        post_id, slug = post.id, post.slug
    assert len(slug) == 199
    client.post(f"/admin/posts/{post_id}/unpublish", data={"csrf_token": csrf_token(client, "/admin/posts")})
    with app.app_context():
        assert db.session.get(Post, post_id).published is False
    assert _audited(app) == [("post", "unpublish", slug)]


def test_saving_a_product_with_the_longest_name_and_label(app: Flask, client: Any, admin: Any) -> None:
    name, label = "N" * 200, "L" * 80
    response = client.post("/admin/products/new", data={
        "csrf_token": csrf_token(client, "/admin/products/new"), "name": name, "description": "",
        "category": "C" * 80, "active": "y", "price": "", "stock": "", "reason": "",
        "variants-0-label": label, "variants-0-sku": "", "variants-0-price": "1.00",
        "variants-0-stock": "3",
        "variants-1-label": "S", "variants-1-sku": "S" * 64, "variants-1-price": "1.00",
        "variants-1-stock": "3"})
    assert response.status_code == 302
    slug = "n" * 200
    with app.app_context():
        assert db.session.scalar(select(Product.slug).where(Product.name == name)) == slug
    assert _audited(app) == [("product", "create", slug), ("variant", "create", f"{slug}/{label}"),
                             ("variant", "create", "S" * 64)]


def test_saving_a_shipping_method_with_the_longest_name(app: Flask, client: Any, admin: Any) -> None:
    name = "Express " * 9 + "Tomorrow"  # 80 characters
    response = client.post("/admin/shipping/new", data={
        "csrf_token": csrf_token(client, "/admin/shipping/new"), "name": name, "price": "5.00",
        "active": "y"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(ShippingMethod.name)) == name
    assert _audited(app) == [("shipping", "create", name)]
