"""The default provider (bank transfer or on delivery): everything works as before, "mark
paid" records the payment in the ledger, refunds are recorded, the dashboard counts payments
less refunds; and, for random partial refunds through the real service, the ledger never gives
back more than was paid and a full sequence gives back the total to the cent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from blog.admin import reports
from blog.database_session import transaction
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.payments import refunds
from blog.payments.models import Payment, PaymentStatus, Refund
from blog.shop.models import Order, OrderItem
from tests.conftest import AuthActions, csrf_token, text_of, undone


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {}  # the default provider, not the package's Stripe settings


def test_a_manual_order_is_paid_by_an_admin_and_the_ledger_records_it(
        app: Flask, client: Any, auth: AuthActions, placed_order: dict[str, Any], make_user: Any) -> None:
    number = placed_order["number"]
    page = text_of(client.get(f"/shop/orders/{number}"))
    assert "bank transfer" in page and "Pay now" not in page
    with app.app_context():
        assert db.session.scalars(select(Payment)).all() == []
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    response = client.post(f"/admin/orders/{number}", data={
        "csrf_token": csrf_token(client, f"/admin/orders/{number}"), "status": "paid"})
    assert response.status_code == 302
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        assert (payment.provider, payment.status, payment.amount) == ("manual", "succeeded", Decimal("21.00"))
        assert reports.revenue_per_day(1)[-1].revenue == Decimal("21.00")
    item = placed_order["order"].items[0]
    refund = client.post(f"/admin/orders/{number}/refund", data={
        "csrf_token": csrf_token(client, "/admin/"), f"qty-{item.id}": "1", "shipping": "0",
        "reason": "One was chipped"})
    assert refund.status_code == 302, text_of(refund)[:1500]
    with app.app_context():
        done = db.session.scalars(select(Refund)).one()
        assert (done.status, done.amount) == ("succeeded", Decimal("8.00"))
        assert done.provider_reference and done.provider_reference.startswith("manual-")
        days = reports.revenue_per_day(1)
        assert (days[-1].revenue, days[-1].orders) == (Decimal("13.00"), 1)
        mail = db.session.scalars(select(EmailMessage).where(EmailMessage.kind == "refund")).one()
        assert mail.subject == f"Refund of $8.00 for order {number}"
        assert "1 × Mug: $8.00" in mail.text_body
        assert "We send the money back the way you paid." in mail.text_body
        assert "Reason: One was chipped" in mail.text_body
    admin_page = text_of(client.get(f"/admin/orders/{number}"))
    assert "One was chipped" in admin_page and "-$8.00 (partly)" in admin_page


# --- the ledger, property-tested through the service ---------------------------------------------

LINES = [(Decimal("12.99"), 3), (Decimal("4.50"), 2), (Decimal("0.99"), 7)]


def _paid_order(app: Flask) -> Order:
    """An order of LINES with a 3.33 discount, 5.00 shipping and 7% tax, paid by hand."""
    subtotal = sum((price * quantity for price, quantity in LINES), Decimal("0.00"))
    discount, shipping = Decimal("3.33"), Decimal("5.00")
    tax = ((subtotal - discount) * Decimal("0.07")).quantize(Decimal("0.01"))
    total = subtotal - discount + shipping + tax
    with transaction() as session:
        order = Order(number="IW-PROPERTY", checkout_token="property", status="paid",
                      full_name="A", address_line1="B", city="C", postal_code="D", country="E",
                      shipping_method_name="Post", subtotal=subtotal, discount_amount=discount,
                      shipping_price=shipping, tax=tax, total=total,
                      items=[OrderItem(product_name=f"Item {i}", unit_price=price, quantity=quantity)
                             for i, (price, quantity) in enumerate(LINES)])
        session.add(order)
        session.flush()
        session.add(Payment(order_id=order.id, provider="manual", reference="manual-IW-PROPERTY",
                            amount=total, currency="USD", status=PaymentStatus.SUCCEEDED))
    return order


@st.composite
def refund_sequences(draw: st.DrawFn) -> list[tuple[int, int, bool]]:
    """(line index, units, with shipping) until every unit is asked for; some asks overreach."""
    left = [quantity for _, quantity in LINES]
    steps = []
    while any(left):
        index = draw(st.sampled_from([i for i, units in enumerate(left) if units]))
        units = draw(st.integers(min_value=1, max_value=left[index] + 1))  # one more: refused
        steps.append((index, units, draw(st.booleans())))
        if units <= left[index]:
            left[index] -= units
        else:
            steps.append((index, left[index], False))  # then what is really left
            left[index] = 0
    return steps


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
@given(steps=refund_sequences())
def test_random_partial_refunds_never_pass_what_was_paid(app: Flask,
                                                         steps: list[tuple[int, int, bool]]) -> None:
    with undone(app), app.app_context():
        order = _paid_order(app)
        items = list(db.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                        .order_by(OrderItem.id)))
        shipping_done = False
        for index, units, with_shipping in steps:
            current = db.session.get(Order, order.id)
            assert current is not None
            shipping = current.shipping_price if with_shipping and not shipping_done else Decimal(0)
            ask = refunds.RefundRequest({items[index].id: units}, shipping, "", False)
            try:
                refunds.refund_order(current, ask, None)
            except refunds.RefundError:
                continue  # more than is left: refused, nothing changed
            shipping_done = shipping_done or shipping > 0
            db.session.expire_all()
            paid = db.session.scalars(select(Payment)).one()
            assert paid.refunded <= paid.amount
        if not shipping_done:
            current = db.session.get(Order, order.id)
            assert current is not None
            refunds.refund_order(current, refunds.RefundRequest({}, current.shipping_price, "", False), None)
        db.session.expire_all()
        final = db.session.get(Order, order.id)
        paid = db.session.scalars(select(Payment)).one()
        assert final is not None
        assert final.refunded_total == final.total == paid.refunded
        given_back = sum((r.amount for r in db.session.scalars(select(Refund))), Decimal(0))
        assert given_back == final.total
