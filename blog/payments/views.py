"""The payment pages: the provider's webhook, the customer's return from the provider's page,
and "pay now" for an order still in its window."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from blog.extensions import csrf, limiter
from blog.payments import services
from blog.payments.providers import BadEvent, ProviderError
from blog.security import require_owner
from blog.shop import orders
from blog.shop.models import Order

bp = Blueprint("payments", __name__)


def _own_order(number: str) -> Order:
    """The order called ``number`` if the current member may see it (its customer, an
    admin); 404 for anyone else, so numbers cannot be probed."""
    order = orders.get_order(number)
    if order is None:
        abort(404)
    require_owner(order.user_id, conceal=True)
    return order


@bp.route("/payments/stripe/webhook", methods=["POST"])
@csrf.exempt  # the signature is the proof; Stripe has no session or CSRF token
@limiter.exempt  # Stripe retries and bursts; a bad signature costs one HMAC
def stripe_webhook() -> Response | tuple[Response, int]:
    if not current_app.config.get("STRIPE_WEBHOOK_SECRET"):
        abort(404)
    try:
        settled = services.handle_webhook("stripe", request.get_data(cache=False),
                                          request.headers.get("Stripe-Signature"))
    except BadEvent:
        return jsonify(error="bad signature or payload"), 400
    return jsonify(received=True, outcome=settled.outcome)


@bp.route("/payments/return/<number>")
@login_required
def returned(number: str) -> Response:
    """Back from the provider's page: ask the provider at once (the webhook may come later)."""
    order = _own_order(number)
    reference = request.args.get("session_id", "")[:255]
    outcome = ""
    if reference and order.status == orders.S.PENDING:
        try:
            outcome = services.check_return(order, reference).outcome
        except ProviderError:
            outcome = ""  # the webhook will tell; the order page says "processing"
    if outcome == "paid" or order.status != orders.S.PENDING:
        flash("Thank you: your payment has arrived.", "success")
    else:
        flash("Your payment is being processed; this page shows it as soon as it arrives.", "info")
    return redirect(url_for("shop.order", number=number, paying=1 if outcome != "paid" else None))


@bp.route("/shop/orders/<number>/pay", methods=["POST"])
@login_required
def pay(number: str) -> Response:
    """Start (or resume) paying an unpaid online order inside its window."""
    order = _own_order(number)
    if order.user_id != current_user.id:
        abort(403)  # an admin looking at it: only the customer pays
    try:
        url = services.start_payment(order)
    except (services.PaymentError, ProviderError) as error:
        flash(error.message, "error")
        return redirect(url_for("shop.order", number=number))
    return redirect(url, 303)


def answer_payment_page(sender: Any, order: Order, **extra: Any) -> str:
    """Listener of ``shop.orders.order_awaits_payment``: the provider's page for ``order``
    (connected by ``blog.register_listeners``)."""
    return services.start_payment(order)
