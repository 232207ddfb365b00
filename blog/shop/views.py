"""Shop pages: catalogue, product, cart, checkout and orders."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from blog.database import utcnow
from blog.database_session import paginate
from blog.errors import ServiceError
from blog.forms import ButtonForm, show_error
from blog.images import is_stored_name
from blog.replica import reads_from_replica
from blog.security import require_owner, safe_next_url
from blog.shop import cart as carts
from blog.shop import catalog, orders
from blog.shop import checkout as checkouts
from blog.shop.errors import ShopError
from blog.shop.forms import AddToCartForm, CartLineForm, CheckoutForm, RemoveLineForm
from blog.shop.models import Order
from blog.shop.pricing import format_money
from blog.urls import site_url

bp = Blueprint("shop", __name__, url_prefix="/shop")


@bp.app_template_filter("money")
def money(amount: Decimal | None, cents: bool = True) -> str:
    """``{{ product.price|money }}`` -> "$1,234.50" in the shop's currency;
    ``{{ tick|money(cents=false) }}`` -> "$1,200"."""
    return format_money(amount, current_app.config["SHOP_CURRENCY"], cents=cents)


@bp.app_template_global()
def product_structured_data(product: Any) -> dict[str, object]:
    """JSON-LD ``Product`` with its ``Offer`` (the lowest price of its variants; in stock
    when any variant is) for a product's page."""
    prices = [variant.price for variant in product.variants]
    data: dict[str, object] = {
        "@context": "https://schema.org", "@type": "Product", "name": product.name,
        "description": product.description[:5000], "sku": product.variants[0].sku or product.slug,
        "url": site_url("shop.product", slug=product.slug),
        "offers": {
            "@type": "Offer", "price": f"{min(prices):.2f}",
            "priceCurrency": current_app.config["SHOP_CURRENCY"],
            "availability": "https://schema.org/" + (
                "InStock" if any(v.stock > 0 for v in product.variants) and product.active
                else "OutOfStock"),
            "url": site_url("shop.product", slug=product.slug),
        },
    }
    if product.image and is_stored_name(product.image):
        data["image"] = site_url("images.serve", name=product.image)
    return data


@bp.app_template_global()
def stock_state(stock: int) -> str:
    return catalog.stock_state(stock)


def merge_cart_on_login(sender: Any, user: Any, **extra: Any) -> None:
    """After any login (registration included), fold the visitor's cart into the member's
    (a listener of Flask-Login's ``user_logged_in``, connected by ``blog.register_listeners``)."""
    result = carts.merge_guest_cart(user)
    if result is not None:
        message = "The items you added before logging in are now in your cart."
        if result.reduced:
            message += " Some quantities were lowered to what is in stock."
        flash(message, "info")


def _flash_errors(form: FlaskForm) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(str(error), "error")


def _back(default: str) -> Response:
    return redirect(safe_next_url(request.form.get("next")) or default)


# --- catalogue -----------------------------------------------------------------------------


@bp.route("/")
@reads_from_replica
def index() -> str:
    q = request.args.get("q", "").strip()[:100]
    # "" (the form's first choice): the default order, best match first for a search.
    sort = request.args.get("sort", "")
    if sort not in catalog.SORTS or sort == catalog.default_sort(q):
        sort = ""
    categories = catalog.categories()
    slug = request.args.get("category", "")
    category = next((c for c in categories if c.slug == slug), None)
    if slug and category is None:
        abort(404)
    page = paginate(catalog.catalogue(q, category, sort or catalog.default_sort(q)), "PRODUCTS_PER_PAGE")
    return render_template("shop/index.html", page=page, categories=categories, category=category,
                           q=q, sort=sort, sorts=catalog.SORTS)


@bp.route("/products/<slug>")
@reads_from_replica
def product(slug: str) -> str:
    item = catalog.get_product(slug)
    is_admin = current_user.is_authenticated and current_user.is_admin
    if item is None or not item.variants or not (item.active or is_admin):
        abort(404)  # an inactive product is gone for shoppers; admins may still look
    form = AddToCartForm(formdata=None, product_id=item.id, next=request.path)
    return render_template("shop/product.html", product=item, form=form)


# --- cart --------------------------------------------------------------------------------


@bp.route("/cart")
def cart() -> str:
    current = carts.current_cart()
    return render_template("shop/cart.html", cart=current, update_form=CartLineForm(formdata=None),
                           remove_form=RemoveLineForm(formdata=None))


@bp.route("/cart/add", methods=["POST"])
def cart_add() -> Response:
    form = AddToCartForm()
    if not form.validate_on_submit():
        _flash_errors(form)
        return _back(url_for("shop.index"))
    try:
        item = carts.add_item(form.product_id.data, form.variant_id.data, form.quantity.data)
    except ShopError as error:
        flash(error.message, "error")
        return _back(url_for("shop.index"))
    flash(f"Added {form.quantity.data} × {item.variant.display_name} to your cart.", "success")
    return redirect(url_for("shop.cart"))


def _change_cart(form: FlaskForm, change: Callable[[], None], done: str) -> Response:
    """Apply ``change`` when ``form`` is valid; either way, flash the outcome and show the cart."""
    if not form.validate_on_submit():
        _flash_errors(form)
    else:
        try:
            change()
        except ShopError as error:
            flash(error.message, "error")
        else:
            flash(done, "success")
    return redirect(url_for("shop.cart"))


@bp.route("/cart/update", methods=["POST"])
def cart_update() -> Response:
    form = CartLineForm()
    return _change_cart(form, lambda: carts.update_item(form.product_id.data, form.variant_id.data,
                                                        form.quantity.data),
                        "Your cart has been updated.")


@bp.route("/cart/remove", methods=["POST"])
def cart_remove() -> Response:
    form = RemoveLineForm()
    return _change_cart(form, lambda: carts.remove_item(form.product_id.data, form.variant_id.data),
                        "Removed from your cart.")


# --- checkout and orders -----------------------------------------------------------------


@bp.route("/checkout", methods=["GET", "POST"])
@login_required
def checkout() -> Response | str:
    methods = checkouts.shipping_methods()
    form = CheckoutForm()
    form.shipping_method.choices = [SelectChoice(m.id, f"{m.name} — {money(m.price)}") for m in methods]
    user = current_user._get_current_object()
    exact = False  # whether the summary must price the shipping choice and the code as typed
    if request.method == "GET":
        form.checkout_token.data = checkouts.new_checkout_token()
        if methods:
            form.shipping_method.data = methods[0].id
    elif request.form.get("action") == "review":
        # A review needs no address yet: only what the price depends on is checked.
        exact = _valid_for_review(form)
    elif form.validate_on_submit():
        details = checkouts.CheckoutDetails(
            full_name=form.full_name.data, address_line1=form.address_line1.data,
            address_line2=form.address_line2.data or "", city=form.city.data,
            postal_code=form.postal_code.data, country=form.country.data,
            shipping_method_id=form.shipping_method.data, discount_code=form.discount_code.data or "",
            checkout_token=form.checkout_token.data, seen_total=form.seen_total.data or "",
        )
        try:
            order = checkouts.place_order(user, details)
        except ShopError as error:
            show_error(form, error)
            exact = True
        else:
            flash(f"Thank you! Your order {order.number} has been placed.", "success")
            return _to_payment(order)
    current = carts.current_cart()
    if request.method == "GET" and (current is None or not current.items):
        flash("Your cart is empty.", "info")
        return redirect(url_for("shop.cart"))
    chosen = next((m for m in methods if m.id == form.shipping_method.data), None)
    totals = _checkout_totals(form, current, chosen, exact, show_problems=not form.errors)
    # The page says what the order costs; placing it is refused if that has changed by then.
    form.seen_total.data = str(totals.total)
    return render_template("shop/checkout.html", form=form, cart=current, totals=totals, shipping=chosen,
                           tax_rate=checkouts.tax_rate())


def _to_payment(order: Any) -> Response:
    """After placing an order: to the provider's payment page (303, so the browser follows
    with a GET) when it is paid online, else to the order page."""
    try:
        url = orders.payment_page(order)
    except ServiceError as error:
        flash(error.message, "error")
        url = None
    if url:
        return redirect(url, 303)
    return redirect(url_for("shop.order", number=order.number))


def _valid_for_review(form: CheckoutForm) -> bool:
    """Validate the fields a review depends on (and the CSRF token), leaving the address alone."""
    fields = [form.shipping_method, form.discount_code]
    if "csrf_token" in form:
        fields.append(form["csrf_token"])
    results = [field.validate(form) for field in fields]  # every field validated, so each shows its errors
    return all(results)


def _checkout_totals(form: CheckoutForm, cart: Any, chosen: Any, exact: bool, *,
                     show_problems: bool) -> checkouts.Totals:
    """The summary's totals: on a first visit the cart with the default shipping; after a
    review or a refused order, exactly what placing it would charge (code included) when
    that can be worked out, the code left out when it cannot be used."""
    if exact and chosen is not None and cart is not None and cart.items:
        try:
            return checkouts.review(current_user._get_current_object(), cart, chosen.id,
                                    form.discount_code.data or "")
        except ShopError as error:
            if show_problems:
                show_error(form, error)
    return checkouts.quote(cart, chosen)


@bp.route("/orders")
@login_required
def order_list() -> str:
    page = paginate(orders.orders_of(current_user), "ORDERS_PER_PAGE")
    return render_template("shop/orders.html", page=page)


def _visible_order(number: str) -> Order:
    """The order numbered ``number`` if the current member owns it or is an admin; 404 for
    anyone else, so order numbers cannot be probed."""
    order = orders.get_order(number)
    if order is None:
        abort(404)
    require_owner(order.user_id, conceal=True)
    return order


@bp.route("/orders/<number>")
@login_required
def order(number: str) -> str:
    item = _visible_order(number)
    mine_and_pending = item.user_id == current_user.id and item.status == orders.S.PENDING
    cancel_form = ButtonForm(formdata=None) if mine_and_pending else None
    # An online order still in its payment window can be paid (again) from here.
    pay_form = ButtonForm(formdata=None) if (
        mine_and_pending and item.payment_provider != "manual" and item.payment_due_at is not None
        and item.payment_due_at > utcnow()) else None
    return render_template("shop/order.html", order=item, cancel_form=cancel_form, pay_form=pay_form)


@bp.route("/orders/<number>/cancel", methods=["POST"])
@login_required
def cancel_order(number: str) -> Response:
    item = _visible_order(number)
    if item.user_id != current_user.id:
        abort(403)  # an admin, not the customer: the admin screens move orders
    try:
        orders.cancel_own_order(current_user._get_current_object(), item)
    except ShopError as error:
        flash(error.message, "error")
    else:
        flash(f"Order {item.number} has been cancelled.", "success")
    return redirect(url_for("shop.order", number=item.number))
