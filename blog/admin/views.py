"""The admin area under ``/admin/``: admins only (403 for other members, the login page for
visitors), checked once for the whole blueprint.

Views stay thin: read the request, call a service of :mod:`blog.admin.services` or
:mod:`blog.admin.products` (forms map their fields to what those take), render or redirect.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from blog import images
from blog.accounts.models import ADMIN, ROLES, User
from blog.admin import products, reports, services
from blog.admin.forms import (
    DiscountForm,
    OrderStatusForm,
    PageForm,
    ProductForm,
    RefundForm,
    SettingsForm,
    ShippingForm,
    SubscriberImportForm,
)
from blog.database_session import paginate
from blog.errors import ServiceError
from blog.extensions import db
from blog.forms import ButtonForm, id_arg, parse_id, show_error
from blog.mail import outbox
from blog.mail.models import EmailMessage, EmailStatus
from blog.newsletter import sending as newsletter_sending
from blog.newsletter import subscribers as newsletter_subscribers
from blog.newsletter.models import DeliveryStatus, NewsletterSend, SubscriberStatus
from blog.pages import services as pages
from blog.pages.models import Page
from blog.pagination import keyset_page
from blog.payments import refunds
from blog.payments import services as payment_services
from blog.payments.models import Refund
from blog.posts import services as posts_services
from blog.posts.models import Comment, Post
from blog.security import role_required
from blog.shop import orders
from blog.shop.models import Discount, OrderStatus, ShippingMethod
from blog.shop.pricing import ZERO
from blog.shop.views import money

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: The setting that sizes every paginated admin list.
PER_PAGE = "ADMIN_PER_PAGE"


@bp.before_request
@role_required(ADMIN)
def _admins_only() -> None:
    """Every page of the blueprint: role_required answers anyone but an admin."""


@bp.context_processor
def _admin_navigation() -> dict[str, Any]:
    return {"admin_endpoints": current_app.view_functions.keys()}


def _get_or_404(model: Any, ident: int) -> Any:
    return db.session.get(model, ident) or abort(404)


def _search() -> str:
    """The list's search text (``?q=``), trimmed and cut to a sensible length."""
    return request.args.get("q", "").strip()[:100]


def _choice(name: str, allowed: Collection[str]) -> str:
    """Query argument ``name`` when it is one of ``allowed``, else "" (no filter)."""
    value = request.args.get(name, "")
    return value if value in allowed else ""


# --- dashboard -------------------------------------------------------------------------------


@bp.route("/")
def dashboard() -> str:
    days = reports.revenue_per_day(30)
    return render_template(
        "admin/dashboard.html", days=days,
        scale=reports.value_scale(max((d.revenue for d in days), default=ZERO)),
        by_status=reports.orders_by_status(), top=reports.top_products(10),
        low_stock=reports.low_stock(10), members=reports.newest_members(5),
        comments=reports.newest_comments(5), emails=outbox.backlog(),
    )


# --- products --------------------------------------------------------------------------------


@bp.route("/products")
def product_list() -> str:
    q, active = _search(), _choice("active", ("yes", "no"))
    category_id = id_arg("category")
    stmt = products.product_list(q, category_id, {"yes": True, "no": False}.get(active))
    page = paginate(stmt, PER_PAGE)
    return render_template("admin/products.html", page=page, q=q, categories=products.category_choices(),
                           category_id=category_id, active=active, form=ButtonForm(formdata=None))


@bp.route("/products/new", methods=["GET", "POST"], defaults={"product_id": None})
@bp.route("/products/<id:product_id>/edit", methods=["GET", "POST"])
def edit_product(product_id: int | None) -> Response | str:
    product = (products.get_product(product_id) or abort(404)) if product_id else None
    form = ProductForm.of(product)
    if form.validate_on_submit():
        try:
            saved = products.save_product(product, form.product_input(product), form.image_upload())
        except (services.AdminError, images.ImageError) as error:
            show_error(form, error)
        else:
            flash(f"{saved.name} saved.", "success")
            return redirect(url_for("admin.edit_product", product_id=saved.id))
    return render_template("admin/product_form.html", form=form, product=product,
                           categories=products.category_names())


@bp.route("/products/<id:product_id>/delete", methods=["POST"])
def retire_product(product_id: int) -> Response:
    product = products.get_product(product_id) or abort(404)
    if products.retire_product(product) == "deleted":
        flash(f"{product.name} was deleted.", "success")
    else:
        flash(f"{product.name} has been ordered, so it was deactivated rather than deleted.", "info")
    return redirect(url_for("admin.product_list"))


# --- orders ----------------------------------------------------------------------------------


@bp.route("/orders")
def order_list() -> str:
    status, q = _choice("status", OrderStatus.ALL), _search()
    page = keyset_page(services.order_list(status, q), services.NEWEST_ORDERS, PER_PAGE)
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
    # Cancelling (restock, the customer told) has its own button that asks first; the
    # select offers the moves forward.
    can_cancel = OrderStatus.CANCELLED in orders.TRANSITIONS[item.status]
    form.status.choices = [c for c in form.status.choices if c.value != OrderStatus.CANCELLED]
    ledger = payment_services.payments_of(item)
    return render_template("admin/order.html", order=item, form=form, can_cancel=can_cancel,
                           payments=ledger, refunds=refunds.refunds_of(item),
                           events=payment_services.events_of(item),
                           items={line.id: line for line in item.items},
                           refundable=any(p.refunded < p.amount for p in ledger if p.status == "succeeded"))


@bp.route("/orders/<number>/refunds/<id:refund_id>/retry", methods=["POST"])
def retry_refund(number: str, refund_id: int) -> Response:
    """Ask the provider again about a refund left pending (the same idempotency key)."""
    item = orders.get_order(number) or abort(404)
    pending = db.session.get(Refund, refund_id)
    if pending is None or pending.order_id != item.id:
        abort(404)
    try:
        refunds.retry(pending, current_user._get_current_object())
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"Refund of {money(pending.amount)} recorded as done.", "success")
    return redirect(url_for("admin.order", number=item.number))


@bp.route("/orders/<number>/refund", methods=["GET", "POST"])
def refund(number: str) -> Response | str | tuple[str, int]:
    item = orders.get_order(number) or abort(404)
    lines = refunds.refundable_lines(item)
    form = RefundForm()
    if form.validate_on_submit():
        try:
            asked = refunds.RefundRequest(quantities=form.quantities(lines),
                                          shipping=form.shipping_amount(),
                                          reason=form.reason.data or "", restock=form.restock.data)
            done = refunds.refund_order(item, asked, current_user._get_current_object())
        except ServiceError as error:
            show_error(form, error)
        else:
            flash(f"Refunded {money(done.amount)} of order {item.number}.", "success")
            return redirect(url_for("admin.order", number=item.number))
    html = render_template("admin/refund.html", order=item, lines=lines, form=form,
                           paid=payment_services.amount_paid(item))
    return (html, 400) if form.is_submitted() else html


# --- members ---------------------------------------------------------------------------------


@bp.route("/users")
def user_list() -> str:
    q = _search()
    page = paginate(services.member_list(q), PER_PAGE)
    return render_template("admin/users.html", page=page, q=q, form=ButtonForm(formdata=None))


@bp.route("/users/<id:user_id>/<action>", methods=["POST"])
def user_action(user_id: int, action: str) -> Response:
    member = _get_or_404(User, user_id)
    try:
        verb, _, role = action.partition("-")
        if verb in ("grant", "revoke") and role in ROLES:
            services.set_role(member, role, verb == "grant")
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
    page = keyset_page(services.recent_comments(), services.NEWEST_COMMENTS, PER_PAGE)
    return render_template("admin/comments.html", page=page, form=ButtonForm(formdata=None))


@bp.route("/comments/<id:comment_id>/delete", methods=["POST"])
def delete_comment(comment_id: int) -> Response:
    services.delete_comment(_get_or_404(Comment, comment_id))
    flash("Comment deleted.", "success")
    return redirect(url_for("admin.comment_list"))


@bp.route("/posts")
def post_list() -> str:
    page = paginate(services.recent_posts(), PER_PAGE)
    return render_template("admin/posts.html", page=page, form=ButtonForm(formdata=None))


@bp.route("/posts/<id:post_id>/unpublish", methods=["POST"])
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
    return render_template("admin/discounts.html", discounts=services.discount_list())


@bp.route("/discounts/new", methods=["GET", "POST"], defaults={"discount_id": None})
@bp.route("/discounts/<id:discount_id>/edit", methods=["GET", "POST"])
def edit_discount(discount_id: int | None) -> Response | str:
    discount = _get_or_404(Discount, discount_id) if discount_id else None
    form = DiscountForm.of(discount)
    if form.validate_on_submit():
        try:
            saved = services.save_discount(discount, form.discount_values())
        except services.AdminError as error:
            show_error(form, error, "code")
        else:
            flash(f"Discount {saved.code} saved.", "success")
            return redirect(url_for("admin.discount_list"))
    return render_template("admin/discount_form.html", form=form, discount=discount)


@bp.route("/shipping")
def shipping_list() -> str:
    return render_template("admin/shipping.html", methods=services.shipping_methods())


@bp.route("/shipping/new", methods=["GET", "POST"], defaults={"method_id": None})
@bp.route("/shipping/<id:method_id>/edit", methods=["GET", "POST"])
def edit_shipping(method_id: int | None) -> Response | str:
    method = _get_or_404(ShippingMethod, method_id) if method_id else None
    form = ShippingForm(obj=method)
    if form.validate_on_submit():
        try:
            saved = services.save_shipping(method, form.shipping_values())
        except services.AdminError as error:
            show_error(form, error, "name")
        else:
            flash(f"Shipping method {saved.name} saved.", "success")
            return redirect(url_for("admin.shipping_list"))
    return render_template("admin/shipping_form.html", form=form, method=method)


# --- pages and site settings -----------------------------------------------------------------


@bp.route("/pages")
def page_list() -> str:
    return render_template("admin/pages.html", pages=db.session.scalars(pages.page_list()).all(),
                           form=ButtonForm(formdata=None))


@bp.route("/pages/new", methods=["GET", "POST"], defaults={"page_id": None})
@bp.route("/pages/<id:page_id>/edit", methods=["GET", "POST"])
def edit_page(page_id: int | None) -> Response | str | tuple[str, int]:
    page = _get_or_404(Page, page_id) if page_id else None
    form = PageForm(obj=page)
    if form.validate_on_submit():
        try:
            saved = services.save_page(page, form.title.data, form.slug.data or "", form.body.data,
                                       form.place.data, form.position.data)
        except services.AdminError as error:
            show_error(form, error)
        else:
            flash(f"Page “{saved.title}” saved.", "success")
            return redirect(url_for("admin.page_list"))
    html = render_template("admin/page_form.html", form=form, page=page)
    return (html, 400) if form.is_submitted() else html


@bp.route("/pages/<id:page_id>/delete", methods=["POST"])
def delete_page(page_id: int) -> Response:
    page = _get_or_404(Page, page_id)
    services.delete_page(page)
    flash(f"Page “{page.title}” deleted.", "info")
    return redirect(url_for("admin.page_list"))


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response | str | tuple[str, int]:
    form = SettingsForm(data=pages.setting_values())
    if form.validate_on_submit():
        values = {name: (form[name].data or "").strip() for name in pages.SETTINGS}
        try:
            changes = services.save_settings(values)
        except services.AdminError as error:
            show_error(form, error)
        else:
            flash("Settings saved." if changes else "Nothing changed.", "success")
            return redirect(url_for("admin.settings"))
    html = render_template("admin/settings.html", form=form)
    return (html, 400) if form.is_submitted() else html


# --- the newsletter ----------------------------------------------------------------------------


@bp.route("/newsletter")
def newsletter() -> str:
    status, q = _choice("status", SubscriberStatus.ALL), _search()
    page = paginate(newsletter_subscribers.subscriber_list(status, q), PER_PAGE)
    recent = db.session.execute(select(Post.id, Post.title).where(posts_services.public_condition())
                                .order_by(Post.published_at.desc(), Post.id.desc()).limit(20)).all()
    return render_template("admin/newsletter.html", page=page, status=status, q=q,
                           statuses=SubscriberStatus.ALL, counts=newsletter_subscribers.counts(),
                           sends=newsletter_sending.progress(), recent=recent,
                           form=ButtonForm(formdata=None), import_form=SubscriberImportForm(formdata=None))


@bp.route("/newsletter/sends/<id:send_id>")
def newsletter_send(send_id: int) -> str:
    """One send, recipient by recipient: status, tries, the server's last answer."""
    send = _get_or_404(NewsletterSend, send_id)
    status = _choice("status", DeliveryStatus.ALL)
    page = paginate(newsletter_sending.deliveries_of(send, status), PER_PAGE)
    return render_template("admin/newsletter_send.html", send=send, post=db.session.get(Post, send.post_id),
                           page=page, status=status, statuses=DeliveryStatus.ALL)


@bp.route("/newsletter/export.csv")
def newsletter_export() -> Response:
    """Every subscriber as CSV, streamed (the list may be long)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in newsletter_subscribers.export_rows():
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    response = current_app.response_class(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=subscribers.csv"
    return response


@bp.route("/newsletter/import", methods=["POST"])
def newsletter_import() -> Response:
    form = SubscriberImportForm()
    upload = form.upload()
    if not form.validate_on_submit() or upload is None:
        flash("Choose a CSV file with an “email” column.", "error")
        return redirect(url_for("admin.newsletter"))
    try:
        rows = list(csv.DictReader(io.StringIO(upload.read(5 * 1024 * 1024 + 1).decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        flash("That file is not a CSV file in UTF-8.", "error")
        return redirect(url_for("admin.newsletter"))
    result = services.import_subscribers(rows, opted_in=form.opted_in.data)
    skipped = "; ".join(f"line {line}: {why}" for line, why in result.skipped[:10])
    flash(f"{result.added} added, {result.updated} updated, {len(result.skipped)} skipped"
          + (f" ({skipped}{' …' if len(result.skipped) > 10 else ''})" if skipped else "") + ".", "info")
    return redirect(url_for("admin.newsletter"))


@bp.route("/newsletter/test", methods=["POST"])
def newsletter_test() -> Response:
    """Send the newsletter of a post to the admin's own address, now."""
    try:
        post_id: int | None = parse_id(request.form.get("post_id") or "")
    except ValueError:
        post_id = None
    post = db.session.get(Post, post_id) if post_id else None
    if post is None:
        flash("Choose a post to send as a test.", "error")
        return redirect(url_for("admin.newsletter"))
    services.send_test_newsletter(post, current_user._get_current_object())
    flash(f"A test of “{post.title}” is on its way to {current_user.email}.", "success")
    return redirect(url_for("admin.newsletter"))


# --- audit -----------------------------------------------------------------------------------


@bp.route("/audit")
def audit() -> str:
    entity = _choice("entity", services.ENTITY_TYPES)
    page = keyset_page(services.audit_events(entity), services.NEWEST_EVENTS, PER_PAGE)
    return render_template("admin/audit.html", page=page, entity=entity,
                           entity_types=services.ENTITY_TYPES)


# --- the outbox --------------------------------------------------------------------------------


@bp.route("/emails")
def email_list() -> str:
    status, q = _choice("status", EmailStatus.ALL), _search()
    page = paginate(services.email_list(status, q), PER_PAGE)
    return render_template("admin/emails.html", page=page, status=status, q=q,
                           statuses=EmailStatus.ALL)


@bp.route("/emails/<id:message_id>")
def email(message_id: int) -> str:
    return render_template("admin/email.html", message=_get_or_404(EmailMessage, message_id),
                           form=ButtonForm(formdata=None))


#: The HTML part of a message is shown in a sandboxed frame of its own, never inside the admin
#: page: it carries text members wrote (a comment, a name), and the sandbox (no scripts, no
#: forms, an opaque origin) with a policy allowing nothing but inline styles and the site's
#: own images keeps anything in it from acting in the admin's session.
EMAIL_PREVIEW_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")


@bp.route("/emails/<id:message_id>/html")
def email_html(message_id: int) -> Response:
    message = _get_or_404(EmailMessage, message_id)
    response = current_app.response_class(message.html_body or "<p>(No HTML part.)</p>",
                                          mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/emails/<id:message_id>/resend", methods=["POST"])
def resend_email(message_id: int) -> Response:
    message = _get_or_404(EmailMessage, message_id)
    if ButtonForm().validate_on_submit():
        try:
            sent = services.resend_email(message)
        except services.AdminError as error:
            flash(error.message, "error")
        else:
            flash(f"The message to {message.recipient} is queued again." if sent.id == message.id
                  else f"A copy of the message to {message.recipient} is queued.", "success")
            return redirect(url_for("admin.email", message_id=sent.id))
    return redirect(url_for("admin.email", message_id=message.id))
