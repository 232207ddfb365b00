"""Admin product management: create and edit with variants, stock reasons, retirement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.admin.models import AuditEvent
from blog.extensions import db
from blog.shop.models import Category, Product
from tests.conftest import csrf_token, page_statements, text_of


def _form(client: Any, path: str = "/admin/products/new", **fields: Any) -> Any:
    data = {"csrf_token": csrf_token(client, path), "name": "Field Notes", "description": "Pocket",
            "category": "Books", "active": "y", "price": "12.50", "stock": "10", "reason": ""}
    data.update(fields)
    return client.post(path, data=data)


def _product(app: Flask, name: str = "Field Notes") -> Product:
    with app.app_context():
        return db.session.scalar(select(Product).where(Product.name == name)
                                 .options(selectinload(Product.variants), selectinload(Product.category)))


def _events(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [(e.entity_type, e.action, e.note)
                for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_products_need_an_admin(client: Any, auth: Any, make_user: Any) -> None:
    assert client.get("/admin/products").status_code == 302
    make_user("bob")
    auth.login("bob")
    assert client.get("/admin/products").status_code == 403
    assert client.get("/admin/products/new").status_code == 403


def test_create_a_single_variant_product(app: Flask, client: Any, admin: Any) -> None:
    page = client.get("/admin/products/new").get_data(as_text=True)
    for name in ("name", "description", "price", "stock", "category", "active", "image"):
        assert f'name="{name}"' in page
    response = _form(client)
    assert response.status_code == 302
    product = _product(app)
    assert (product.slug, product.category.name, product.active) == ("field-notes", "Books", True)
    assert [(v.label, v.price, v.stock) for v in product.variants] == [("", Decimal("12.50"), 10)]
    assert _events(app) == [("product", "create", ""), ("variant", "create", "")]
    assert "Field Notes" in text_of(client.get("/shop/"))


def test_create_with_variants_and_an_existing_category(app: Flask, client: Any, admin: Any,
                                                       make_product: Any) -> None:
    make_product("Other", category="Clothes")
    _form(client, name="Shirt", category="clothes", price="", stock="", **{
        "variants-0-label": "M", "variants-0-sku": "SH-M", "variants-0-price": "20", "variants-0-stock": "4",
        "variants-1-label": "L", "variants-1-sku": "SH-L", "variants-1-price": "22.00",
        "variants-1-stock": "0"})
    product = _product(app, "Shirt")
    assert [(v.label, v.sku, v.price, v.stock) for v in product.variants] == [
        ("M", "SH-M", Decimal("20.00"), 4), ("L", "SH-L", Decimal("22.00"), 0)]
    with app.app_context():
        assert db.session.scalars(select(Category.name)).all() == ["Clothes"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": ""}, "This field is required"), ({"price": "", "stock": ""}, "Give the price and the stock"),
    ({"price": "-1"}, "between 0 and"), ({"price": "1.234"}, "two decimal places"),
    ({"stock": "-5"}, "between 0 and"), ({"stock": "lots"}, "Not a valid integer"),
    ({"price": "", "stock": "", "variants-0-label": "M"}, "needs a price and a stock"),
    ({"variants-0-label": "M", "variants-0-price": "1", "variants-0-stock": "1",
      "variants-1-label": "M", "variants-1-price": "1", "variants-1-stock": "1"}, "same label"),
    ({"category": "x" * 81}, "longer than 80"),
])
def test_product_form_validation(app: Flask, client: Any, admin: Any, fields: dict[str, str],
                                 message: str) -> None:
    response = _form(client, **fields)
    assert response.status_code == 200 and message in text_of(response)
    assert _product(app, fields.get("name", "Field Notes")) is None
    assert _events(app) == []


def test_duplicate_sku_is_a_form_error(app: Flask, client: Any, admin: Any, make_product: Any) -> None:
    make_product("Mug")  # its variant's SKU is MUG-0
    response = _form(client, price="", stock="", **{
        "variants-0-label": "A", "variants-0-sku": "MUG-0", "variants-0-price": "1", "variants-0-stock": "1"})
    assert "already used" in text_of(response)
    assert _product(app) is None and _events(app) == []


def test_stock_change_needs_a_reason_and_is_audited(app: Flask, client: Any, admin: Any) -> None:
    _form(client)
    product = _product(app)
    path = f"/admin/products/{product.id}/edit"
    response = _form(client, path, stock="7")
    assert "Say why the stock changed" in text_of(response)
    assert _product(app).variants[0].stock == 10
    _form(client, path, stock="7", reason="Counted the shelf")
    assert _product(app).variants[0].stock == 7
    assert _events(app)[-1] == ("variant", "adjust_stock", "Counted the shelf")
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert (event.actor_name, event.changes) == ("root", {"stock": [10, 7]})


def test_edit_keeps_the_slug_and_records_changes(app: Flask, client: Any, admin: Any) -> None:
    _form(client)
    product = _product(app)
    _form(client, f"/admin/products/{product.id}/edit", name="Field Notes II", category="Stationery",
          active="", price="13.00")
    product = _product(app, "Field Notes II")
    assert (product.slug, product.active, product.category.name) == ("field-notes", False, "Stationery")
    with app.app_context():
        update = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "update",
                                                             AuditEvent.entity_type == "product")).one()
    assert update.changes == {"name": ["Field Notes", "Field Notes II"], "active": [True, False],
                              "category": ["Books", "Stationery"]}


def test_ordered_product_is_deactivated_not_deleted(app: Flask, client: Any, placed: dict[str, Any],
                                                    make_product: Any) -> None:
    mug = placed["mug"]
    spare = make_product("Spare")
    for product in (mug, spare):
        client.post(f"/admin/products/{product.id}/delete",
                    data={"csrf_token": csrf_token(client, "/admin/products")})
    assert _product(app, "Mug").active is False
    assert _product(app, "Spare") is None
    assert [action for kind, action, _ in _events(app) if kind == "product"] == ["deactivate", "delete"]


def test_product_list_filters_and_statements(app: Flask, client: Any, admin: Any, make_product: Any) -> None:
    make_product("Mug", category="Kitchen")
    make_product("Retired Pen", active=False)
    assert "Retired Pen" not in text_of(client.get("/admin/products?active=yes"))
    assert "Mug" not in text_of(client.get("/admin/products?active=no"))
    assert "Retired Pen" not in text_of(client.get("/admin/products?q=MUG-0"))
    assert "Mug" in text_of(client.get("/admin/products?q=MUG-0"))
    before = page_statements(client, "/admin/products").count
    for n in range(6):
        make_product(f"More {n}", [("A", "1.00", 1), ("B", "2.00", 2)], category=f"C{n}")
    assert page_statements(client, "/admin/products").count == before == 4  # user, count, page, categories


def test_single_variant_product_becomes_several(app: Flask, client: Any, admin: Any) -> None:
    _form(client)
    product = _product(app)
    _form(client, f"/admin/products/{product.id}/edit", price="", stock="", reason="Split by size", **{
        "variants-0-label": "A5", "variants-0-price": "12.50", "variants-0-stock": "4",
        "variants-1-label": "A4", "variants-1-price": "15.00", "variants-1-stock": "6"})
    after = _product(app)
    assert [(v.id == product.variants[0].id, v.label, v.stock) for v in after.variants] == [
        (True, "A5", 4), (False, "A4", 6)]


@pytest.mark.parametrize("field", ["price", "variants-0-price"])
@pytest.mark.parametrize("amount", ["NaN", "sNaN", "-Infinity", "9" * 30, "1e309"])
def test_product_prices_refuse_non_finite_and_oversized_amounts(app: Flask, client: Any, admin: Any,
                                                                field: str, amount: str) -> None:
    extra = {"variants-0-label": "A4", "variants-0-stock": "3"} if field.startswith("variants") else {}
    response = _form(client, **{field: amount, **extra})
    assert response.status_code == 200
    assert "an amount such as 12.50" in text_of(response) or "at most 9,999,999.99" in text_of(response)
    assert _product(app) is None


@pytest.mark.parametrize("ident", [str(2**31), str(2**63), "9" * 30, "\u0661", "-1"])
def test_a_variant_row_id_out_of_range_is_a_form_error(app: Flask, client: Any, admin: Any,
                                                       make_product: Any, ident: str) -> None:
    product = make_product("Print", [("A4", "10.00", 5), ("A3", "15.00", 5)])
    path = f"/admin/products/{product.id}/edit"
    response = _form(client, path, name="Print", price="", stock="", **{
        "variants-0-id": ident, "variants-0-label": "A4", "variants-0-price": "10.00",
        "variants-0-stock": "5", "variants-1-id": str(product.variants[1].id),
        "variants-1-label": "A3", "variants-1-price": "15.00", "variants-1-stock": "5"})
    assert response.status_code == 200 and "Not a valid id" in text_of(response)
