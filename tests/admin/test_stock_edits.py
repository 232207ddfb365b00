"""A product form opened before some units sold never brings the sold units back: a stock
edit moves the stock by what the admin changed, relative to what their form showed."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from blog.admin.models import AuditEvent
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.models import Variant
from tests.conftest import text_of

INPUT = re.compile(r'<input\b[^>]*>')


def _opened_form(client: Any, path: str) -> dict[str, str]:
    """What a browser would submit from the page as it is now (text and hidden inputs)."""
    page = client.get(path).get_data(as_text=True)
    data = {}
    for tag in INPUT.findall(page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="checkbox"' not in tag and 'type="file"' not in tag:
            data[name.group(1)] = value.group(1) if value else ""
        elif name and 'type="checkbox"' in tag and " checked" in tag:
            data[name.group(1)] = "y"
    return data


def _sell(app: Flask, variant_id: int, quantity: int) -> None:
    """Customers buy ``quantity`` (the checkout's conditional update) while the form is open."""
    with app.app_context(), transaction() as session:
        session.execute(update(Variant).where(Variant.id == variant_id)
                        .values(stock=Variant.stock - quantity))


def _stock(app: Flask, variant_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(Variant.stock).where(Variant.id == variant_id))


def _stock_events(app: Flask) -> list[tuple[dict[str, Any], str]]:
    with app.app_context():
        return [(e.changes, e.note) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.entity_type == "variant").order_by(AuditEvent.id))]


def test_saving_an_old_form_keeps_the_sales(app: Flask, client: Any, admin: Any, make_product: Any) -> None:
    product = make_product("Print", [("", "30.00", 20)])
    variant_id, path = product.variants[0].id, f"/admin/products/{product.id}/edit"
    form = _opened_form(client, path)
    assert form["stock"] == "20" and form["stock_seen"] == "20"
    _sell(app, variant_id, 3)

    assert client.post(path, data=form | {"name": "Print (signed)"}).status_code == 302
    assert _stock(app, variant_id) == 17  # not 20 again
    assert _stock_events(app) == []

    form = _opened_form(client, path)
    _sell(app, variant_id, 2)
    client.post(path, data=form | {"stock": "27", "reason": "Delivery of 10"})
    assert _stock(app, variant_id) == 25  # 15 left + the 10 delivered
    assert _stock_events(app) == [({"stock": [15, 25]}, "Delivery of 10")]


def test_taking_away_more_than_is_left_is_refused(app: Flask, client: Any, admin: Any,
                                                  make_product: Any) -> None:
    product = make_product("Shirt", [("M", "20.00", 6), ("L", "20.00", 4)])
    medium, large = (variant.id for variant in product.variants)
    path = f"/admin/products/{product.id}/edit"
    form = _opened_form(client, path)
    assert (form["variants-0-stock"], form["variants-0-stock_seen"]) == ("6", "6")
    _sell(app, medium, 5)

    response = client.post(path, data=form | {"variants-0-stock": "0", "variants-1-stock": "5",
                                              "reason": "Damaged in the shop"})
    assert response.status_code == 200
    assert "M: only 1 left now (sold since you opened the form)" in text_of(response)
    assert (_stock(app, medium), _stock(app, large)) == (1, 4)  # nothing changed, L neither
    assert _stock_events(app) == []

    form = _opened_form(client, path)
    client.post(path, data=form | {"variants-0-stock": "0", "reason": "Damaged in the shop"})
    assert _stock(app, medium) == 0
    assert _stock_events(app) == [({"stock": [1, 0]}, "Damaged in the shop")]
