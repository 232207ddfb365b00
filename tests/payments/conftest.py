"""What the payment tests share: the local Stripe stand-in (localstripe behind a small server
that adds Checkout Sessions and idempotency), an app configured for Stripe, and helpers to
check out and to deliver signed webhooks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.extensions import db
from blog.shop.models import Order
from tests.payments.stripe_stand_in import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn, running, sign

SITE = "https://shop.example"


@pytest.fixture(scope="session")
def stand_in() -> Iterator[StripeStandIn]:
    with running() as server:
        yield server


@pytest.fixture
def stripe_config(stand_in: StripeStandIn) -> dict[str, Any]:
    stand_in.failures.clear()
    return {"PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": stand_in.url,
            "STRIPE_CHECKOUT_ORIGIN": stand_in.url, "PAYMENT_WINDOW_MINUTES": 30, "SITE_URL": SITE}


@pytest.fixture
def config_overrides(stripe_config: dict[str, Any]) -> dict[str, Any]:
    return stripe_config


def deliver(client: Any, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET,
            timestamp: int | None = None, signature: str | None = None) -> Any:
    """POST ``event`` to the webhook as Stripe would: its JSON, signed."""
    payload = json.dumps(event).encode()
    header = signature if signature is not None else sign(payload, secret, timestamp)
    return client.post("/payments/stripe/webhook", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": header})


def session_id_of(location: str) -> str:
    match = re.search(r"/pay/(cs_test_[0-9a-f]+)$", location)
    assert match, location
    return match.group(1)


def load_order(app: Flask, number: str) -> Order:
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.number == number)
                                   .options(selectinload(Order.items))).one()
        db.session.expunge(order)
        return order


@pytest.fixture
def stripe_order(app: Flask, auth: Any, shop: Any, make_user: Any, make_product: Any,
                 make_shipping: Any, stand_in: StripeStandIn) -> dict[str, Any]:
    """alice checks out 2 Mugs at 8.00 (5 in stock) by Post at 5.00 (21.00) with Stripe on:
    the checkout answers 303 to the stand-in's payment page. Keys: ``number``, ``session``
    (the Checkout Session's id), ``response``, ``mug``, ``post``."""
    make_user("alice")
    make_user("root", admin=True)
    mug = make_product("Mug", [("", "8.00", 5)])
    post = make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 2)
    response = shop.checkout(post)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    session = session_id_of(response.headers["Location"])
    number = stand_in.sessions[session]["client_reference_id"]
    return {"number": number, "session": session, "response": response, "mug": mug, "post": post}
