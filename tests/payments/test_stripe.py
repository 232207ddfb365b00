"""Stripe Checkout end to end against the local stand-in: the checkout sends the customer to
the payment page, a signed webhook (or the customer's return) marks the order paid exactly
once, the payment window closes unpaid orders, a late payment is refunded, and admins refund
lines and shipping to the cent."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from blog.admin import reports
from blog.admin.models import AuditEvent
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.payments.models import Payment, PaymentEvent, Refund
from blog.shop.models import Order, OrderItem, Variant
from tests.conftest import AuthActions, csrf_token, text_of
from tests.payments.conftest import SITE, deliver, load_order
from tests.payments.stripe_stand_in import StripeStandIn


def emails(app: Flask, kind: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(EmailMessage)
                                 .where(EmailMessage.kind == kind)) or 0


def audits(app: Flask, number: str, action: str) -> list[dict[str, Any]]:
    with app.app_context():
        return [event.changes for event in db.session.scalars(
            select(AuditEvent).where(AuditEvent.entity_id == number, AuditEvent.action == action)
            .order_by(AuditEvent.id))]


def stock(app: Flask, product: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(Variant.stock).where(Variant.product_id == product.id)) or 0


def payments(app: Flask) -> list[Payment]:
    with app.app_context():
        return list(db.session.scalars(select(Payment).order_by(Payment.id)))


# --- starting -------------------------------------------------------------------------------


def test_checkout_sends_the_customer_to_the_payment_page(app: Flask, stripe_order: dict[str, Any],
                                                         stand_in: StripeStandIn) -> None:
    session = stand_in.sessions[stripe_order["session"]]
    order = load_order(app, stripe_order["number"])
    assert (order.status, order.payment_provider) == ("pending", "stripe")
    assert session["amount_total"] == 2100 and session["currency"] == "usd"
    assert session["metadata"] == {"order_number": order.number}
    assert session["client_reference_id"] == order.number
    assert order.payment_due_at is not None
    assert session["expires_at"] == int(order.payment_due_at.timestamp())
    assert session["success_url"] == (f"{SITE}/payments/return/{order.number}"
                                      "?session_id={CHECKOUT_SESSION_ID}")
    [payment] = payments(app)
    assert (payment.status, payment.reference, payment.amount) == ("pending", session["id"], Decimal("21.00"))
    # Stock is held while the customer pays.
    assert stock(app, stripe_order["mug"]) == 3


def test_the_csp_lets_the_checkout_form_reach_stripe(client: Any, stand_in: StripeStandIn) -> None:
    policy = client.get("/").headers["Content-Security-Policy"]
    assert f"form-action 'self' https://checkout.stripe.com {stand_in.url}" in policy


def test_pay_now_reuses_the_open_session(client: Any, stripe_order: dict[str, Any]) -> None:
    number = stripe_order["number"]
    page = text_of(client.get(f"/shop/orders/{number}"))
    assert "Pay now" in page and "Please pay by" in page
    response = client.post(f"/shop/orders/{number}/pay",
                           data={"csrf_token": csrf_token(client, f"/shop/orders/{number}")})
    assert response.status_code == 303
    assert response.headers["Location"] == stripe_order["response"].headers["Location"]


def test_a_provider_that_cannot_be_reached_leaves_the_order_to_pay_later(
        app: Flask, auth: Any, shop: Any, make_user: Any, make_product: Any, make_shipping: Any,
        stand_in: StripeStandIn, client: Any) -> None:
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    post = make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 1)
    stand_in.fail("/v1/checkout/sessions", 503, times=3)  # the library tries three times
    response = shop.checkout(post)
    assert response.status_code == 302
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    assert response.headers["Location"].endswith(f"/shop/orders/{order.number}")
    page = text_of(client.get(response.headers["Location"]))
    assert "could not be reached to start the payment" in page and "Pay now" in page
    # A moment later the provider answers.
    pay = client.post(f"/shop/orders/{order.number}/pay", data={"csrf_token": csrf_token(client, "/")})
    assert pay.status_code == 303 and "/pay/cs_test_" in pay.headers["Location"]


def test_a_cancelled_order_closes_its_payment_page(app: Flask, client: Any, stripe_order: dict[str, Any],
                                                  stand_in: StripeStandIn) -> None:
    number = stripe_order["number"]
    response = client.post(f"/shop/orders/{number}/cancel",
                           data={"csrf_token": csrf_token(client, f"/shop/orders/{number}")})
    assert response.status_code == 302
    assert load_order(app, number).status == "cancelled"
    assert stand_in.sessions[stripe_order["session"]]["status"] == "expired"
    [payment] = payments(app)
    assert payment.status == "failed"
    assert stock(app, stripe_order["mug"]) == 5


# --- paid exactly once -------------------------------------------------------------------------


def test_a_signed_webhook_marks_the_order_paid_once(app: Flask, client: Any, stripe_order: dict[str, Any],
                                                    stand_in: StripeStandIn) -> None:
    number = stripe_order["number"]
    event = stand_in.pay(stripe_order["session"])
    response = deliver(client, event)
    assert response.status_code == 200 and response.get_json()["outcome"] == "paid"
    order = load_order(app, number)
    assert order.status == "paid"
    [payment] = payments(app)
    assert payment.status == "succeeded" and payment.charge_reference.startswith("pi_")
    assert emails(app, "order_paid") == 1
    assert len(audits(app, number, "status")) == 1
    # The same event again, however often: nothing more.
    for _ in range(3):
        again = deliver(client, event)
        assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    assert emails(app, "order_paid") == 1 and len(audits(app, number, "status")) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 1


@pytest.mark.parametrize("how", ["wrong secret", "too old", "no header", "garbage"])
def test_a_webhook_that_is_not_stripes_changes_nothing(app: Flask, client: Any, stripe_order: dict[str, Any],
                                                       stand_in: StripeStandIn, how: str) -> None:
    event = stand_in.pay(stripe_order["session"])
    kwargs: dict[str, Any] = {
        "wrong secret": {"secret": "whsec_someone_else"},
        "too old": {"timestamp": int(time.time()) - 301},
        "no header": {"signature": ""},
        "garbage": {"signature": "t=1,v1=00"},
    }[how]
    response = deliver(client, event, **kwargs)
    assert response.status_code == 400
    assert load_order(app, stripe_order["number"]).status == "pending"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 0


def test_a_payment_of_another_amount_does_not_pay_the_order(app: Flask, client: Any,
                                                            stripe_order: dict[str, Any],
                                                            stand_in: StripeStandIn) -> None:
    event = stand_in.pay(stripe_order["session"])
    event["data"]["object"]["amount_total"] = 100
    response = deliver(client, event)
    assert response.get_json()["outcome"] == "amount mismatch"
    assert load_order(app, stripe_order["number"]).status == "pending"
    assert emails(app, "order_paid") == 0


def test_the_return_page_asks_the_provider_and_the_webhook_then_changes_nothing(
        app: Flask, client: Any, stripe_order: dict[str, Any], stand_in: StripeStandIn) -> None:
    number, session = stripe_order["number"], stripe_order["session"]
    processing = client.get(f"/payments/return/{number}?session_id={session}", follow_redirects=True)
    assert "Payment processing" in text_of(processing)  # not paid yet at the provider
    event = stand_in.pay(session)
    response = client.get(f"/payments/return/{number}?session_id={session}", follow_redirects=True)
    assert "Thank you: your payment has arrived." in text_of(response)
    assert load_order(app, number).status == "paid"
    assert deliver(client, event).get_json()["outcome"] == "already recorded"
    assert emails(app, "order_paid") == 1 and len(audits(app, number, "status")) == 1


def test_someone_elses_return_page_is_not_found(app: Flask, client: Any, auth: AuthActions,
                                                stripe_order: dict[str, Any], make_user: Any) -> None:
    auth.logout()
    make_user("mallory")
    auth.login("mallory")
    number, session = stripe_order["number"], stripe_order["session"]
    assert client.get(f"/payments/return/{number}?session_id={session}").status_code == 404
    assert client.post(f"/shop/orders/{number}/pay",
                       data={"csrf_token": csrf_token(client, "/")}).status_code == 404


# --- the payment window -------------------------------------------------------------------------


def _past_window(app: Flask, number: str) -> None:
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.number == number)).one()
        order.payment_due_at = order.created_at.replace(year=order.created_at.year - 1)
        db.session.commit()


def test_an_unpaid_order_expires_once_and_a_late_payment_is_refunded(
        app: Flask, client: Any, runner: Any, stripe_order: dict[str, Any], stand_in: StripeStandIn) -> None:
    number = stripe_order["number"]
    _past_window(app, number)
    assert runner.invoke(args=["orders", "expire-unpaid"]).output.strip() == \
        "Cancelled 1 unpaid order past the payment window."
    assert runner.invoke(args=["orders", "expire-unpaid"]).output.strip() == \
        "Cancelled 0 unpaid orders past the payment window."
    assert load_order(app, number).status == "cancelled"
    assert stock(app, stripe_order["mug"]) == 5  # put back, once
    page = text_of(client.get(f"/shop/orders/{number}"))
    assert "Pay now" not in page
    # The customer had the page open and paid anyway.
    event = stand_in.pay(stripe_order["session"])
    response = deliver(client, event)
    assert response.get_json()["outcome"] == "refund due"
    [payment] = payments(app)
    assert (payment.status, payment.refunded) == ("succeeded", Decimal("21.00"))
    assert [r["amount"] for r in stand_in.refunds_of(payment.charge_reference)] == [2100]
    with app.app_context():
        refund = db.session.scalars(select(Refund)).one()
        assert (refund.status, refund.amount) == ("succeeded", Decimal("21.00"))
    assert emails(app, "refund") == 1 and emails(app, "late_payment") == 1
    with app.app_context():
        mail = db.session.scalars(select(EmailMessage).where(EmailMessage.kind == "refund")).one()
    assert "arrived after the order had been cancelled" in mail.text_body
    assert "back to the card you paid with" in mail.text_body
    assert load_order(app, number).status == "cancelled"
    assert stock(app, stripe_order["mug"]) == 5


# --- refunds ----------------------------------------------------------------------------------


def _paid(client: Any, stripe_order: dict[str, Any], stand_in: StripeStandIn) -> str:
    deliver(client, stand_in.pay(stripe_order["session"]))
    return str(stripe_order["number"])


def _refund(client: Any, number: str, item_id: int, quantity: int, shipping: str = "0",
            restock: bool = True, reason: str = "Broken in the post") -> Any:
    data = {"csrf_token": csrf_token(client, "/admin/"), f"qty-{item_id}": str(quantity),
            "shipping": shipping, "reason": reason}
    if restock:
        data["restock"] = "y"
    return client.post(f"/admin/orders/{number}/refund", data=data)


def test_an_admin_refunds_a_line_in_parts_then_the_rest_to_the_cent(
        app: Flask, client: Any, auth: AuthActions, stripe_order: dict[str, Any],
        stand_in: StripeStandIn) -> None:
    number = _paid(client, stripe_order, stand_in)
    auth.logout()
    auth.login("root")
    item = load_order(app, number).items[0]
    form = client.get(f"/admin/orders/{number}/refund")
    assert form.status_code == 200 and "Units to refund" in text_of(form)
    first = _refund(client, number, item.id, 1)
    assert first.status_code == 302, text_of(first)[:2000]
    second = _refund(client, number, item.id, 1, shipping="5.00", restock=False)
    assert second.status_code == 302
    order = load_order(app, number)
    assert order.refunded_total == order.total == Decimal("21.00")
    assert order.refunded_shipping == Decimal("5.00")
    [payment] = payments(app)
    assert payment.refunded == Decimal("21.00")
    assert sorted(r["amount"] for r in stand_in.refunds_of(payment.charge_reference)) == [800, 1300]
    assert stock(app, stripe_order["mug"]) == 4  # only the first refund restocked
    assert emails(app, "refund") == 2
    assert [c["amount"] for c in audits(app, number, "refund")] == ["8.00", "13.00"]
    # Nothing is left: a third refund is refused and changes nothing.
    third = _refund(client, number, item.id, 1)
    assert third.status_code == 400 and "only 0 left" in text_of(third)
    admin_page = text_of(client.get(f"/admin/orders/{number}"))
    assert "-$21.00 (all)" in admin_page and "Broken in the post" in admin_page
    # The dashboard agrees: 21.00 came in today and 21.00 went back.
    with app.test_request_context():
        today = reports.revenue_per_day(1)[-1]
    assert (today.revenue, today.orders) == (Decimal("0.00"), 1)


def test_a_refund_the_provider_refuses_is_recorded_as_not_refunded(
        app: Flask, client: Any, auth: AuthActions, stripe_order: dict[str, Any],
        stand_in: StripeStandIn) -> None:
    number = _paid(client, stripe_order, stand_in)
    auth.logout()
    auth.login("root")
    item = load_order(app, number).items[0]
    stand_in.fail("/v1/refunds", 402)
    response = _refund(client, number, item.id, 2)
    assert response.status_code == 400
    assert "Not refunded" in text_of(response)
    order = load_order(app, number)
    assert order.refunded_total == 0 and order.items[0].refunded_quantity == 0
    [payment] = payments(app)
    assert payment.refunded == 0
    assert stand_in.refunds_of(payment.charge_reference) == []
    with app.app_context():
        refund = db.session.scalars(select(Refund)).one()
        assert refund.status == "failed" and refund.error
        assert db.session.scalar(select(OrderItem.refunded_quantity)) == 0
    assert stock(app, stripe_order["mug"]) == 3
    assert emails(app, "refund") == 0
    # Asked again, it goes through.
    assert _refund(client, number, item.id, 2).status_code == 302
    assert load_order(app, number).refunded_total == Decimal("16.00")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       signature=st.none() | st.text(max_size=120))
def test_any_webhook_body_and_signature_is_answered_without_an_error(
        app: Flask, client: Any, payload: bytes, signature: str | None) -> None:
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    try:
        response = client.post("/payments/stripe/webhook", data=payload, headers=headers)
    except ValueError:
        return  # a header the test client itself refuses to send (a newline in it)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 0


def test_the_worker_closes_unpaid_orders_every_minute(app: Flask, stripe_order: dict[str, Any]) -> None:
    """The periodic task `flask worker` runs each minute is registered, and does the expiry."""
    from datetime import datetime

    from blog.jobs import huey
    from blog.payments.jobs import expire_unpaid_orders

    due = {task.name for task in huey.read_periodic(datetime(2026, 12, 5, 8, 17))}
    assert expire_unpaid_orders.task_class.__name__ in due
    _past_window(app, stripe_order["number"])
    with app.app_context():
        expire_unpaid_orders.call_local()
    assert load_order(app, stripe_order["number"]).status == "cancelled"
    assert stock(app, stripe_order["mug"]) == 5


def test_a_refund_left_pending_by_a_crash_is_completed_once(
        app: Flask, client: Any, auth: AuthActions, stripe_order: dict[str, Any],
        stand_in: StripeStandIn) -> None:
    """The provider refunded, then the site stopped before recording it: asking again with the
    same idempotency key records the refund the provider already made, never a second one."""
    from blog.payments import refunds
    from blog.payments.providers import provider

    number = _paid(client, stripe_order, stand_in)
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.number == number)).one()
        item = db.session.scalars(select(OrderItem)).one()
        ask = refunds.RefundRequest({item.id: 1}, Decimal(0), "Crashed", False)
        pending = refunds._reserve(order, refunds.quote(order, ask), {item.id: 0}, "Crashed", False, None)
        payment = db.session.get(Payment, pending.payment_id)
        assert payment is not None
        provider("stripe").refund(str(payment.charge_reference), pending.amount, "USD",
                                  idempotency_key=pending.idempotency_key, reason="Crashed")  # crash
        intent = str(payment.charge_reference)
    auth.logout()
    auth.login("root")
    page = text_of(client.get(f"/admin/orders/{number}"))
    assert "Ask the provider again" in page and "checkout.session.completed" in page
    token = csrf_token(client, f"/admin/orders/{number}")
    done = client.post(f"/admin/orders/{number}/refunds/{pending.id}/retry", data={"csrf_token": token},
                       follow_redirects=True)
    assert "recorded as done" in text_of(done)
    again = client.post(f"/admin/orders/{number}/refunds/{pending.id}/retry", data={"csrf_token": token},
                        follow_redirects=True)
    assert "Only a pending refund can be retried." in text_of(again)
    assert [r["amount"] for r in stand_in.refunds_of(intent)] == [800]
    with app.app_context():
        assert db.session.get(Refund, pending.id).status == "succeeded"  # type: ignore[union-attr]
        assert db.session.get(Payment, pending.payment_id).refunded == Decimal("8.00")  # type: ignore[union-attr]
    assert load_order(app, number).refunded_total == Decimal("8.00")
