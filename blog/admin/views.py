"""The admin area under ``/admin/``: admins only (403 for other members, the login page for
visitors), checked once for the whole blueprint."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from blog.accounts.models import User
from blog.admin import products, reports, services
from blog.admin.forms import DiscountForm, OrderStatusForm, ProductForm, ShippingForm
from blog.database import CENT
from blog.database_session import paginate
from blog.extensions import db, login_manager
from blog.forms import ButtonForm, show_error
from blog.posts.models import Comment, Post
from blog.shop import images, orders
from blog.shop.models import (
    Category,
    Discount,
    FixedAmountDiscount,
    OrderStatus,
    PercentageDiscount,
    Product,
    ShippingMethod,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)
    return None


@bp.context_processor
def _admin_navigation() -> dict[str, Any]:
    return {"admin_endpoints": current_app.view_functions.keys()}


def _get_or_404(model: Any, ident: int) -> Any:
    return db.session.get(model, ident) or abort(404)


# --- dashboard -------------------------------------------------------------------------------


@bp.route("/")
def dashboard() -> str:
    days = reports.revenue_per_day(30)
    return render_template(
        "admin/dashboard.html", days=days, peak=max((d.revenue for d in days), default=0),
        by_status=reports.orders_by_status(), top=reports.top_products(10),
        low_stock=reports.low_stock(10), members=reports.newest_members(5),
        comments=reports.newest_comments(5),
    )


# --- products --------------------------------------------------------------------------------


@bp.route("/products")
def product_list() -> str:
    q = request.args.get("q", "").strip()[:100]
    category_id = request.args.get("category", type=int)
    active = {"yes": True, "no": False}.get(request.args.get("active", ""))
    page = paginate(products.product_list(q, category_id, active), "ORDERS_PER_PAGE")
    categories = db.session.scalars(db.select(Category).order_by(Category.name)).all()
    return render_template("admin/products.html", page=page, q=q, categories=categories,
                           category_id=category_id, active=request.args.get("active", ""),
                           form=ButtonForm(formdata=None))


def _variant_rows(form: ProductForm, product: Product | None) -> list[products.VariantInput]:
    """What the form says the variants are: the filled rows of the variants section, or else
    the single variant given by the top-level price and stock."""
    rows = [entry.form for entry in form.variants
            if (entry.form.label.data or "").strip() or entry.form.price.data is not None]
    if rows:
        missing = [row for row in rows if row.price.data is None or row.stock.data is None]
        if missing:
            raise services.AdminError("Every variant needs a price and a stock.", "variants")
        inputs = [products.VariantInput(int(row.id.data) if (row.id.data or "").isdigit() else None,
                                        row.label.data or "", row.sku.data or "",
                                        row.price.data.quantize(CENT), row.stock.data) for row in rows]
        if (product is not None and len(product.variants) == 1
                and all(item.id is None for item in inputs)):
            # A single-variant product becoming several: its variant becomes the first row,
            # so no unlabelled leftover stays on sale beside the new ones.
            inputs[0].id = product.variants[0].id
        return inputs
    if form.price.data is None or form.stock.data is None:
        raise services.AdminError("Give the price and the stock.", "price")
    only = product.variants[0] if product is not None and len(product.variants) == 1 else None
    return [products.VariantInput(only.id if only else None, only.label if only else "",
                                  (only.sku or "") if only else "", form.price.data.quantize(CENT),
                                  form.stock.data)]


@bp.route("/products/new", methods=["GET", "POST"], defaults={"product_id": None})
@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
def edit_product(product_id: int | None) -> Response | str:
    product = (products.get_product(product_id) or abort(404)) if product_id else None
    form = ProductForm()
    if request.method == "GET":
        _fill_product_form(form, product)
    elif form.validate_on_submit():
        new_image = None
        try:
            variants = _variant_rows(form, product)
            upload = form.image.data
            if upload and getattr(upload, "filename", ""):
                new_image = images.save_product_image(upload)
            old_image = product.image if product else None
            saved = products.save_product(
                product, name=form.name.data, description=form.description.data or "",
                category=form.category.data or "", active=form.active.data, variants=variants,
                reason=form.reason.data or "", image=new_image)
        except (services.AdminError, images.ImageError) as error:
            images.delete_product_image(new_image)
            show_error(form, error)
        else:
            if new_image and old_image and old_image != new_image:
                images.delete_product_image(old_image)
            flash(f"{saved.name} saved.", "success")
            return redirect(url_for("admin.edit_product", product_id=saved.id))
    return render_template("admin/product_form.html", form=form, product=product,
                           categories=db.session.scalars(db.select(Category.name)
                                                         .order_by(Category.name)).all())


def _fill_product_form(form: ProductForm, product: Product | None) -> None:
    if product is None:
        for _ in range(2):
            form.variants.append_entry()
        return
    form.name.data, form.description.data = product.name, product.description
    form.category.data = product.category.name if product.category else ""
    form.active.data = product.active
    if len(product.variants) == 1:
        form.price.data, form.stock.data = product.variants[0].price, product.variants[0].stock
    else:
        for variant in product.variants:
            form.variants.append_entry({"id": str(variant.id), "label": variant.label,
                                        "sku": variant.sku or "", "price": variant.price,
                                        "stock": variant.stock})
    for _ in range(2):
        form.variants.append_entry()


@bp.route("/products/<int:product_id>/delete", methods=["POST"])
def retire_product(product_id: int) -> Response:
    product = products.get_product(product_id) or abort(404)
    outcome = products.retire_product(product)
    if outcome == "deleted":
        images.delete_product_image(product.image)
        flash(f"{product.name} was deleted.", "success")
    else:
        flash(f"{product.name} has been ordered, so it was deactivated rather than deleted.", "info")
    return redirect(url_for("admin.product_list"))


# --- orders ----------------------------------------------------------------------------------


@bp.route("/orders")
def order_list() -> str:
    status = request.args.get("status", "")
    if status not in OrderStatus.ALL:
        status = ""
    q = request.args.get("q", "").strip()[:100]
    page = paginate(services.order_list(status, q), "ORDERS_PER_PAGE")
    return render_template("admin/orders.html", page=page, status=status, q=q,
                           statuses=OrderStatus.ALL)


@bp.route("/orders/<number>", methods=["GET", "POST"])
def order(number: str) -> Response | str:
    item = orders.get_order(number) or abort(404)
    form = OrderStatusForm()
    form.status.choices = [SelectChoice(s, s.capitalize()) for s in orders.TRANSITIONS[item.status]]
    if form.validate_on_submit():
        try:
            services.move_order(item, form.status.data)
        except services.AdminError as error:
            flash(error.message, "error")
        else:
            flash(f"Order {item.number} is now {item.status}.", "success")
        return redirect(url_for("admin.order", number=item.number))
    if request.method == "POST":
        flash("That move is not allowed for this order.", "error")
    return render_template("admin/order.html", order=item, form=form)


# --- members ---------------------------------------------------------------------------------


@bp.route("/users")
def user_list() -> str:
    q = request.args.get("q", "").strip()[:100]
    page = paginate(services.member_list(q), "ORDERS_PER_PAGE")
    return render_template("admin/users.html", page=page, q=q, form=ButtonForm(formdata=None))


@bp.route("/users/<int:user_id>/<action>", methods=["POST"])
def user_action(user_id: int, action: str) -> Response:
    member = _get_or_404(User, user_id)
    try:
        if action in ("grant-admin", "revoke-admin"):
            services.set_admin(member, action == "grant-admin")
        elif action in ("activate", "deactivate"):
            services.set_member_active(member, action == "activate")
        else:
            abort(404)
    except services.AdminError as error:
        flash(error.message, "error")
    else:
        flash(f"{member.username}: done.", "success")
    return redirect(url_for("admin.user_list", q=request.args.get("q", "")))


# --- moderation ------------------------------------------------------------------------------


@bp.route("/comments")
def comment_list() -> str:
    page = paginate(services.recent_comments(), "ORDERS_PER_PAGE")
    return render_template("admin/comments.html", page=page, form=ButtonForm(formdata=None))


@bp.route("/comments/<int:comment_id>/delete", methods=["POST"])
def delete_comment(comment_id: int) -> Response:
    services.delete_comment(_get_or_404(Comment, comment_id))
    flash("Comment deleted.", "success")
    return redirect(url_for("admin.comment_list"))


@bp.route("/posts")
def post_list() -> str:
    page = paginate(services.recent_posts(), "ORDERS_PER_PAGE")
    return render_template("admin/posts.html", page=page, form=ButtonForm(formdata=None))


@bp.route("/posts/<int:post_id>/unpublish", methods=["POST"])
def unpublish_post(post_id: int) -> Response:
    try:
        services.unpublish_post(_get_or_404(Post, post_id))
    except services.AdminError as error:
        flash(error.message, "error")
    else:
        flash("The post is a draft again.", "success")
    return redirect(url_for("admin.post_list"))


# --- discounts and shipping --------------------------------------------------------------------


@bp.route("/discounts")
def discount_list() -> str:
    items = db.session.scalars(db.select(Discount).order_by(Discount.code)).all()
    return render_template("admin/discounts.html", discounts=items)


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if value is not None else None


@bp.route("/discounts/new", methods=["GET", "POST"], defaults={"discount_id": None})
@bp.route("/discounts/<int:discount_id>/edit", methods=["GET", "POST"])
def edit_discount(discount_id: int | None) -> Response | str:
    discount = _get_or_404(Discount, discount_id) if discount_id else None
    form = DiscountForm(obj=discount)
    if discount is not None and request.method == "GET":
        form.kind.data = discount.kind
        form.value.data = discount.percent if discount.kind == "percentage" else discount.amount
    if form.validate_on_submit():
        percentage = form.kind.data == "percentage"
        value = form.value.data.quantize(CENT)
        values = {
            "code": form.code.data.strip().upper(), "active": form.active.data,
            "starts_at": _aware(form.starts_at.data), "ends_at": _aware(form.ends_at.data),
            "usage_limit": form.usage_limit.data,
            "min_subtotal": (form.min_subtotal.data.quantize(CENT)
                             if form.min_subtotal.data is not None else None),
            "percent": value if percentage else None, "amount": None if percentage else value,
        }
        target = discount
        if target is None:
            target = PercentageDiscount() if percentage else FixedAmountDiscount()
        elif target.kind != form.kind.data:
            form.kind.errors.append("The kind of an existing code cannot change; make a new code.")
            return render_template("admin/discount_form.html", form=form, discount=discount)
        try:
            services.save_discount(target, values, new=discount is None)
        except services.AdminError as error:
            show_error(form, error, "code")
        else:
            flash(f"Discount {target.code} saved.", "success")
            return redirect(url_for("admin.discount_list"))
    return render_template("admin/discount_form.html", form=form, discount=discount)


@bp.route("/shipping")
def shipping_list() -> str:
    items = db.session.scalars(db.select(ShippingMethod).order_by(ShippingMethod.price)).all()
    return render_template("admin/shipping.html", methods=items)


@bp.route("/shipping/new", methods=["GET", "POST"], defaults={"method_id": None})
@bp.route("/shipping/<int:method_id>/edit", methods=["GET", "POST"])
def edit_shipping(method_id: int | None) -> Response | str:
    method = _get_or_404(ShippingMethod, method_id) if method_id else None
    form = ShippingForm(obj=method)
    if form.validate_on_submit():
        target = method or ShippingMethod()
        try:
            services.save_shipping(target, {"name": form.name.data.strip(),
                                            "price": form.price.data.quantize(CENT),
                                            "active": form.active.data}, new=method is None)
        except services.AdminError as error:
            show_error(form, error, "name")
        else:
            flash(f"Shipping method {target.name} saved.", "success")
            return redirect(url_for("admin.shipping_list"))
    return render_template("admin/shipping_form.html", form=form, method=method)


# --- audit -----------------------------------------------------------------------------------


@bp.route("/audit")
def audit() -> str:
    entity = request.args.get("entity", "")
    if entity not in services.ENTITY_TYPES:
        entity = ""
    page = paginate(services.audit_events(entity), "ORDERS_PER_PAGE")
    return render_template("admin/audit.html", page=page, entity=entity,
                           entity_types=services.ENTITY_TYPES)
