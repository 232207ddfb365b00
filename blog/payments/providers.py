"""The payment provider interface, and the two providers: ``manual`` and ``stripe``.

A provider does four things, each a call to its service and nothing else (the ledger and the
order's moves are :mod:`blog.payments.services`'s):

- :meth:`Provider.start`: ask to be paid for an order; returns where to send the customer.
- :meth:`Provider.status`: what the provider knows of an attempt (the return page asks).
- :meth:`Provider.refund`: give an amount back, with an idempotency key.
- :meth:`Provider.parse_event`: verify a webhook's signature and read the event.

``PAYMENT_PROVIDER`` chooses one for new orders; an order remembers the provider it was placed
with, so switching never strands an order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, cast

import stripe
from flask import current_app

from blog.errors import ServiceError

#: Stripe lets a Checkout Session live between 30 minutes and 24 hours.
STRIPE_MIN_WINDOW_MINUTES = 30
STRIPE_MAX_WINDOW_MINUTES = 24 * 60


class ProviderError(ServiceError):
    """The provider could not be reached or refused; ``message`` is for the person asking."""


class BadEvent(Exception):
    """A webhook whose signature, age or body is wrong: answered 400, changing nothing."""


@dataclass(frozen=True)
class Checkout:
    """An attempt to be paid, as the provider made it."""

    reference: str
    url: str


@dataclass(frozen=True)
class PaymentState:
    """What the provider says of an attempt."""

    reference: str
    paid: bool
    #: Closed without being paid (expired).
    closed: bool
    amount: Decimal | None
    currency: str | None
    order_number: str | None
    charge_reference: str | None
    #: The payment was refused for good (a delayed method that failed).
    failed: bool = False


@dataclass(frozen=True)
class Event:
    """A verified webhook event."""

    id: str
    type: str
    #: The attempt the event is about, when it is about one.
    state: PaymentState | None


@dataclass(frozen=True)
class OrderToPay:
    """What a provider needs of an order (so providers never touch the ORM)."""

    number: str
    total: Decimal
    currency: str
    description: str
    email: str | None
    return_url: str
    cancel_url: str
    expires_at: datetime | None
    idempotency_key: str


class Provider(Protocol):
    name: str
    #: Whether the customer pays on the provider's page (and the order waits in a window).
    online: bool

    def start(self, order: OrderToPay) -> Checkout: ...

    def status(self, reference: str) -> PaymentState: ...

    def refund(self, charge_reference: str, amount: Decimal, currency: str, *,
               idempotency_key: str, reason: str = "") -> str: ...

    def close(self, reference: str) -> None: ...

    def parse_event(self, payload: bytes, signature: str | None) -> Event: ...


def minor_units(amount: Decimal) -> int:
    """Cents from a two-decimal amount, exactly (the shop's currencies all have two)."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"not a whole number of cents: {amount}")
    return int(cents)


def from_minor_units(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class ManualProvider:
    """Bank transfer or payment on delivery: nothing to start, an admin records the payment."""

    name = "manual"
    online = False

    def start(self, order: OrderToPay) -> Checkout:
        raise ProviderError("This order is paid by bank transfer or on delivery.")

    def status(self, reference: str) -> PaymentState:
        raise ProviderError("Manual payments have no provider to ask.")

    def refund(self, charge_reference: str, amount: Decimal, currency: str, *,
               idempotency_key: str, reason: str = "") -> str:
        # The money goes back the way it came (a bank transfer by the shop); the ledger
        # records it, which is all this provider can do.
        return f"manual-{idempotency_key}"

    def close(self, reference: str) -> None:
        """Nothing is open at a provider."""

    def parse_event(self, payload: bytes, signature: str | None) -> Event:
        raise BadEvent("manual payments send no events")


class StripeProvider:
    """Stripe Checkout's hosted page, through the official ``stripe`` library."""

    name = "stripe"
    online = True

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str | None = None,
                 timeout: float = 20) -> None:
        self.webhook_secret = webhook_secret
        # requests comes with stripe; a short timeout, so a slow provider costs the customer
        # seconds, not a worker held for the library's default 80.
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2, http_client=stripe.RequestsClient(timeout=timeout))

    def start(self, order: OrderToPay) -> Checkout:
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": order.number,
            "metadata": {"order_number": order.number},
            "payment_intent_data": {"metadata": {"order_number": order.number}},
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": order.currency.lower(),
                               "unit_amount": minor_units(order.total),
                               "product_data": {"name": order.description[:250]}},
            }],
            "success_url": order.return_url,
            "cancel_url": order.cancel_url,
        }
        if order.email:
            params["customer_email"] = order.email
        if order.expires_at is not None:
            params["expires_at"] = int(order.expires_at.timestamp())
        try:
            session = self.client.v1.checkout.sessions.create(
                params=cast(Any, params), options={"idempotency_key": order.idempotency_key})
        except stripe.StripeError as error:
            raise ProviderError(_say(error, "start the payment")) from error
        if not session.url or not session.id:
            raise ProviderError("The payment provider gave no payment page; please try again.")
        return Checkout(reference=session.id, url=session.url)

    def status(self, reference: str) -> PaymentState:
        try:
            session = self.client.v1.checkout.sessions.retrieve(reference)
        except stripe.StripeError as error:
            raise ProviderError(_say(error, "look up the payment")) from error
        return _session_state(session)

    def refund(self, charge_reference: str, amount: Decimal, currency: str, *,
               idempotency_key: str, reason: str = "") -> str:
        params: dict[str, Any] = {"payment_intent": charge_reference, "amount": minor_units(amount)}
        if reason:
            params["metadata"] = {"reason": reason[:500]}
        try:
            refund = self.client.v1.refunds.create(params=cast(Any, params),
                                                   options={"idempotency_key": idempotency_key})
        except stripe.StripeError as error:
            raise ProviderError(_say(error, "refund")) from error
        if getattr(refund, "status", None) == "failed":
            raise ProviderError("The payment provider refused the refund.")
        return str(refund.id)

    def close(self, reference: str) -> None:
        """Expire an open Checkout Session, so its page takes no payment any more (an order
        cancelled while the customer still had the page open). One already closed is fine."""
        try:
            self.client.v1.checkout.sessions.expire(reference)
        except stripe.InvalidRequestError:
            return  # completed or expired already
        except stripe.StripeError as error:
            raise ProviderError(_say(error, "close the payment page")) from error

    def parse_event(self, payload: bytes, signature: str | None) -> Event:
        try:
            event = stripe.Webhook.construct_event(payload, signature, self.webhook_secret,
                                                   tolerance=300)
        except (ValueError, stripe.SignatureVerificationError) as error:
            raise BadEvent(str(error)) from error
        state = None
        obj = event.data.object if getattr(event, "data", None) is not None else None
        if event.type.startswith("checkout.session.") and obj is not None:
            state = _session_state(obj)
            if event.type == "checkout.session.async_payment_failed":
                state = replace(state, paid=False, failed=True)
        return Event(id=event.id, type=event.type, state=state)


def _session_state(obj: Any) -> PaymentState:
    # The library's objects are not dicts (since stripe 15); read a plain copy.
    session: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    metadata = session.get("metadata") or {}
    intent = session.get("payment_intent")
    if intent is not None and not isinstance(intent, str):
        intent = intent.get("id")
    amount = session.get("amount_total")
    currency = session.get("currency")
    return PaymentState(
        reference=session["id"],
        paid=session.get("payment_status") in ("paid", "no_payment_required")
        and session.get("status") == "complete",
        closed=session.get("status") == "expired",
        amount=from_minor_units(int(amount)) if amount is not None else None,
        currency=currency.upper() if currency else None,
        order_number=metadata.get("order_number") or session.get("client_reference_id"),
        charge_reference=intent,
    )


def _say(error: stripe.StripeError, doing: str) -> str:
    unavailable = (error.http_status or 0) >= 500
    if unavailable or isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)):
        return f"The payment provider could not be reached to {doing}; please try again in a moment."
    message = getattr(error, "user_message", None) or "the payment provider refused"
    return f"Could not {doing}: {message}."


def provider(name: str | None = None) -> Provider:
    """The provider called ``name`` (default: ``PAYMENT_PROVIDER``), configured from settings."""
    config = current_app.config
    name = name or config["PAYMENT_PROVIDER"]
    if name == "manual":
        return ManualProvider()
    if name == "stripe":
        return StripeProvider(config["STRIPE_SECRET_KEY"], config["STRIPE_WEBHOOK_SECRET"],
                              config["STRIPE_API_BASE"], float(config["STRIPE_TIMEOUT"]))
    raise ValueError(f"unknown payment provider {name!r}")
