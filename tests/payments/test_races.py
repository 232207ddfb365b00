"""Payments under real concurrency (threads, separate sessions, real commits, both databases):
the webhook racing the customer's return, one event delivered ten times at once, the payment
window closing while a payment arrives, and two admins refunding the same line."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.accounts import services as accounts
from blog.accounts.models import ADMIN, User
from blog.admin.models import AuditEvent
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.payments import refunds
from blog.payments.models import Payment, Refund
from blog.payments.services import expire_unpaid
from blog.shop.models import Order, OrderItem, Variant
from tests.conftest import PASSWORD, AuthActions, ShopActions, create_product, create_shipping
from tests.payments.conftest import deliver, session_id_of
from tests.payments.stripe_stand_in import StripeStandIn
from tests.shop.test_checkout_concurrency import run_together


@pytest.fixture
def config_overrides(stripe_config: dict[str, Any]) -> dict[str, Any]:
    return stripe_config | {"DB_POOL_SIZE": 25, "DB_MAX_OVERFLOW": 5, "RATELIMIT_ENABLED": False}


def _checked_out(app: Flask) -> tuple[Any, str, str, int]:
    """alice, logged in, placed an order of 2 mugs with Stripe on: (her client, the order
    number, the Checkout Session id, the variant's id)."""
    with app.app_context():
        accounts.create_user("alice", "alice@example.com", PASSWORD)
        accounts.create_user("root", "root@example.com", PASSWORD, roles=(ADMIN,))
        mug = create_product("Mug", [("", "8.00", 5)])
        post = create_shipping("Post", "5.00")
        variant_id = mug.variants[0].id
    client = app.test_client()
    assert AuthActions(client).login("alice").status_code == 302
    shop = ShopActions(client)
    shop.add(mug, 2)
    response = shop.checkout(post)
    assert response.status_code == 303
    with app.app_context():
        number = db.session.scalar(select(Order.number))
    return client, str(number), session_id_of(response.headers["Location"]), variant_id


def _count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _status(app: Flask, number: str) -> str:
    with app.app_context():
        return str(db.session.scalar(select(Order.status).where(Order.number == number)))


def test_webhook_and_return_page_at_once_pay_the_order_once(committed_app: Flask,
                                                            stand_in: StripeStandIn) -> None:
    app = committed_app
    customer, number, session, _ = _checked_out(app)
    event = stand_in.pay(session)
    stripe_side = app.test_client()
    results = run_together([
        lambda: deliver(stripe_side, event),
        lambda: customer.get(f"/payments/return/{number}?session_id={session}"),
    ])
    assert all(not isinstance(r, BaseException) for r in results), results
    assert results[0].status_code == 200 and results[1].status_code == 302
    assert _status(app, number) == "paid"
    assert _count(app, EmailMessage, EmailMessage.kind == "order_paid") == 1
    assert _count(app, AuditEvent, AuditEvent.entity_id == number, AuditEvent.action == "status") == 1
    assert _count(app, Payment, Payment.status == "succeeded") == 1


def test_the_same_event_ten_times_at_once_changes_the_order_once(committed_app: Flask,
                                                                  stand_in: StripeStandIn) -> None:
    app = committed_app
    _, number, session, _ = _checked_out(app)
    event = stand_in.pay(session)
    clients = [app.test_client() for _ in range(10)]
    results = run_together([lambda c=c: deliver(c, event) for c in clients])
    assert all(not isinstance(r, BaseException) and r.status_code == 200 for r in results), results
    outcomes = sorted(r.get_json()["outcome"] for r in results)
    assert outcomes.count("paid") == 1 and set(outcomes) <= {"paid", "duplicate"}, outcomes
    assert _status(app, number) == "paid"
    assert _count(app, EmailMessage, EmailMessage.kind == "order_paid") == 1
    assert _count(app, AuditEvent, AuditEvent.entity_id == number, AuditEvent.action == "status") == 1


def test_the_window_closing_while_the_payment_arrives(committed_app: Flask, stand_in: StripeStandIn) -> None:
    """Either the payment wins (paid, stock stays sold) or the expiry does (cancelled, stock
    back once, the payment refunded in full): never both, never neither."""
    app = committed_app
    _, number, session, variant_id = _checked_out(app)
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.number == number)).one()
        order.payment_due_at = order.created_at  # the window is over
        db.session.commit()
    event = stand_in.pay(session)
    stripe_side = app.test_client()

    def expire() -> int:
        with app.app_context():
            return expire_unpaid()

    results = run_together([expire, lambda: deliver(stripe_side, event)])
    assert all(not isinstance(r, BaseException) for r in results), results
    with app.app_context():
        stock = db.session.scalar(select(Variant.stock).where(Variant.id == variant_id))
        payment = db.session.scalars(select(Payment)).one()
        refunded = db.session.scalars(select(Refund)).all()
    status = _status(app, number)
    if status == "paid":
        assert (results[0], stock, refunded, payment.refunded) == (0, 3, [], 0)
    else:
        assert status == "cancelled" and results[0] == 1 and stock == 5, results[1].get_json()
        assert [r.status for r in refunded] == ["succeeded"], results[1].get_json()
        assert payment.refunded == Decimal("21.00")
        assert [r["amount"] for r in stand_in.refunds_of(payment.charge_reference)] == [2100]


def test_two_admins_refunding_the_same_line_at_once(committed_app: Flask, stand_in: StripeStandIn) -> None:
    app = committed_app
    _, number, session, variant_id = _checked_out(app)
    deliver(app.test_client(), stand_in.pay(session))
    with app.app_context():
        item_id = db.session.scalar(select(OrderItem.id))
        root_id = db.session.scalar(select(User.id).where(User.username == "root"))

    def refund() -> Any:
        with app.app_context():
            order = db.session.scalars(select(Order).where(Order.number == number)).one()
            admin = db.session.get(User, root_id)
            asked = refunds.RefundRequest({item_id: 2}, Decimal(0), "x", True)
            return refunds.refund_order(order, asked, admin)

    results = run_together([refund, refund])
    done = [r for r in results if isinstance(r, Refund)]
    refused = [r for r in results if isinstance(r, refunds.RefundError)]
    assert len(done) == 1 and len(refused) == 1, results
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        assert payment.refunded == Decimal("16.00") <= payment.amount
        assert db.session.scalar(select(OrderItem.refunded_quantity)) == 2
        assert db.session.scalar(select(Variant.stock).where(Variant.id == variant_id)) == 5
    assert [r["amount"] for r in stand_in.refunds_of(payment.charge_reference)] == [1600]
