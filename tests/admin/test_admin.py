"""The admin area: access, dashboard figures, orders, members, moderation, discounts,
shipping and the audit trail."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from blog.admin import reports
from blog.admin.models import AuditEvent
from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.models import Discount, Order, ShippingMethod, Variant
from tests.conftest import csrf_token, page_statements, text_of

GET_ROUTES = ["/admin/", "/admin/products", "/admin/products/new", "/admin/orders", "/admin/users",
              "/admin/comments", "/admin/posts",
              "/admin/discounts", "/admin/discounts/new", "/admin/shipping", "/admin/shipping/new",
              "/admin/audit"]


def events(app: Flask, entity_type: str | None = None) -> list[AuditEvent]:
    with app.app_context():
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if entity_type:
            stmt = stmt.where(AuditEvent.entity_type == entity_type)
        return list(db.session.scalars(stmt))


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", GET_ROUTES)
def test_anonymous_visitors_are_sent_to_log_in(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_members_get_403(client: Any, auth: Any, make_user: Any, path: str) -> None:
    make_user("bob")
    auth.login("bob")
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", GET_ROUTES)
def test_admins_get_the_page(client: Any, admin: Any, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/admin/users/1/grant-admin", "/admin/users/1/deactivate",
                                  "/admin/comments/1/delete", "/admin/posts/1/unpublish",
                                  "/admin/orders/IW-X", "/admin/products/new", "/admin/products/1/edit",
                                  "/admin/products/1/delete", "/admin/discounts/new",
                                  "/admin/discounts/1/edit", "/admin/shipping/new",
                                  "/admin/shipping/1/edit"])
def test_member_posts_are_refused(client: Any, auth: Any, make_user: Any, path: str) -> None:
    make_user("bob")
    auth.login("bob")
    response = client.post(path, data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 403


def test_admin_link_only_for_admins(client: Any, auth: Any, make_user: Any) -> None:
    make_user("bob")
    auth.login("bob")
    assert 'href="/admin/"' not in client.get("/").get_data(as_text=True)
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    assert 'href="/admin/"' in client.get("/").get_data(as_text=True)


# --- orders ----------------------------------------------------------------------------------


def _move(client: Any, number: str, status: str) -> Any:
    return client.post(f"/admin/orders/{number}", data={
        "csrf_token": csrf_token(client, f"/admin/orders/{number}"), "status": status})


def test_cancelling_an_order_in_the_admin_asks_first(app: Flask, client: Any, placed: Any) -> None:
    """The status select only moves an order forward; cancelling is its own button inside a
    confirmation, whose form carries status=cancelled."""
    number = placed["number"]
    page = text_of(client.get(f"/admin/orders/{number}"))
    select = page.split('<select', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option[^>]*value="(\w+)"', select) == ["paid"]
    confirmation = page.split('<details class="confirm">', 1)[1].split("</details>", 1)[0]
    assert "Cancel order " + number + "? Its items go back into stock" in confirmation
    assert '<input type="hidden" name="status" value="cancelled">' in confirmation
    assert "Yes, cancel the order" in confirmation
    assert _move(client, number, "cancelled").status_code == 302
    page = text_of(client.get(f"/admin/orders/{number}"))
    assert "A cancelled order cannot change any more." in page and "<details" not in page


def test_admin_moves_an_order_and_it_is_audited(app: Flask, client: Any, placed: Any) -> None:
    number = placed["number"]
    for status in ("paid", "shipped", "delivered"):
        response = _move(client, number, status)
        assert response.status_code == 302
    assert "delivered" in text_of(client.get(f"/admin/orders/{number}"))
    trail = events(app, "order")
    assert [(e.entity_id, e.changes["status"], e.actor_name) for e in trail] == [
        (number, ["pending", "paid"], "root"), (number, ["paid", "shipped"], "root"),
        (number, ["shipped", "delivered"], "root")]
    assert "shipped → delivered" in text_of(client.get("/admin/audit?entity=order"))


def test_admin_cannot_make_an_invalid_move(app: Flask, client: Any, placed: Any) -> None:
    response = _move(client, placed["number"], "delivered")
    assert response.status_code == 200 and "not allowed" in text_of(response)
    with app.app_context():
        assert db.session.scalar(select(Order.status)) == "pending"
    assert events(app, "order") == []


def test_admin_cancel_returns_stock(app: Flask, client: Any, placed: Any) -> None:
    _move(client, placed["number"], "paid")
    _move(client, placed["number"], "cancelled")
    with app.app_context():
        assert db.session.scalar(select(Variant.stock).where(Variant.id == placed["variant_id"])) == 5


def test_customer_cancel_is_audited_too(app: Flask, client: Any, auth: Any, placed: Any) -> None:
    auth.logout()
    auth.login("alice")
    client.post(f"/shop/orders/{placed['number']}/cancel",
                data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert [(e.actor_name, e.changes) for e in events(app, "order")] == [
        ("alice", {"status": ["pending", "cancelled"]})]


def test_order_list_filters_and_search(client: Any, placed: Any) -> None:
    number = placed["number"]
    assert number in text_of(client.get("/admin/orders?status=pending"))
    assert number not in text_of(client.get("/admin/orders?status=paid"))
    assert number in text_of(client.get("/admin/orders?q=alice"))
    assert number in text_of(client.get(f"/admin/orders?q={number[3:7].lower()}"))
    assert number not in text_of(client.get("/admin/orders?q=nobody"))
    assert client.get("/admin/orders/IW-NOPE").status_code == 404


def test_audit_event_rolls_back_with_its_change(app: Flask, placed: Any) -> None:
    """The status listener writes the event; if the transaction then fails, neither stays."""
    from blog.shop import orders

    def fail(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("something after the audit event went wrong")

    with app.test_request_context(), orders.order_status_changed.connected_to(fail):
        order = db.session.scalar(select(Order))
        with pytest.raises(RuntimeError):
            orders.change_status(order, "paid")
    assert events(app) == []
    with app.app_context():
        assert db.session.scalar(select(Order.status)) == "pending"


# --- dashboard -------------------------------------------------------------------------------


def _age_orders(app: Flask, days_ago: list[int], statuses: list[str]) -> None:
    """Give the orders these ages and statuses; those past "pending" (not cancelled) get their
    payment, received the day they were placed (revenue counts payments)."""
    from blog.payments.models import Payment

    with app.app_context(), transaction() as session:
        placed = list(session.scalars(select(Order).order_by(Order.id)))
        for order, ago, status in zip(placed, days_ago, statuses, strict=True):
            moment = utcnow() - timedelta(days=ago)
            session.execute(update(Order).where(Order.id == order.id).values(
                created_at=moment, status=status))
            if status in ("paid", "shipped", "delivered"):
                session.add(Payment(order_id=order.id, provider="manual", reference=f"m-{order.id}",
                                    amount=order.total, currency="USD", status="succeeded",
                                    paid_at=moment))


def test_dashboard_figures_equal_hand_computed_sums(app: Flask, client: Any, auth: Any, shop: Any,
                                                    placed: Any, make_product: Any) -> None:
    pen = make_product("Pen", [("", "8.00", 10)])
    auth.logout()
    auth.login("alice")
    for quantity in (1, 3, 1):  # three orders of pens: 13.00, 29.00, 13.00 with shipping
        shop.add(pen, quantity)
        assert shop.checkout(placed["post"]).status_code == 302
    # Orders: 21.00 (today, paid), 13.00 (2 days ago, shipped), 29.00 (40 days ago, delivered:
    # outside the 30 days), 13.00 (today, cancelled: not revenue).
    _age_orders(app, [0, 2, 40, 0], ["paid", "shipped", "delivered", "cancelled"])
    with app.test_request_context():
        days = reports.revenue_per_day(30)
        by_status = reports.orders_by_status()
        top = reports.top_products()
    assert len(days) == 30
    assert days[-1].revenue == Decimal("21.00") and days[-1].orders == 1
    assert days[-3].revenue == Decimal("13.00")
    assert sum(d.revenue for d in days) == Decimal("34.00")
    assert by_status == {"pending": (0, Decimal("0.00")), "paid": (1, Decimal("21.00")),
                         "shipped": (1, Decimal("13.00")), "delivered": (1, Decimal("29.00")),
                         "cancelled": (1, Decimal("13.00"))}
    # Outside the cancelled order: pens 1 + 3 at 8.00, mugs 2 at 8.00.
    assert [(t.name, t.quantity, t.revenue) for t in top] == [
        ("Pen", 4, Decimal("32.00")), ("Mug", 2, Decimal("16.00"))]


def test_dashboard_page_and_its_statement_count(app: Flask, client: Any, auth: Any, shop: Any,
                                                placed: Any, make_product: Any) -> None:
    first = page_statements(client, "/admin/").count
    page = text_of(client.get("/admin/"))
    assert "<svg" in page and "Revenue, last 30 days" in page and "Mug" in page
    auth.logout()
    auth.login("alice")
    for n in range(4):
        product = make_product(f"Extra {n}", [("", "2.00", 1)])
        shop.add(product, 1)
        shop.checkout(placed["post"])
    auth.logout()
    auth.login("root")
    assert page_statements(client, "/admin/").count == first == 8  # user + six aggregates + emails


@pytest.mark.parametrize(("peak", "scale"), [
    ("0", ["0", "1", "2", "3", "4"]),
    ("3.50", ["0", "1", "2", "3", "4"]),
    ("21.00", ["0", "10", "20", "30", "40"]),
    ("34.00", ["0", "10", "20", "30", "40"]),
    ("95.10", ["0", "25", "50", "75", "100"]),
    ("100.00", ["0", "25", "50", "75", "100"]),
    ("12345.67", ["0", "5000", "10000", "15000", "20000"]),
])
def test_chart_scale_is_round_and_reaches_the_peak(peak: str, scale: list[str]) -> None:
    assert reports.value_scale(Decimal(peak)) == [Decimal(value) for value in scale]


def test_dashboard_chart_has_a_value_scale(app: Flask, client: Any, auth: Any, shop: Any,
                                           placed: Any, make_product: Any) -> None:
    """The bars are drawn against labelled gridlines: the only day with revenue (today,
    the placed order's 21.00; the pen order is cancelled) reaches 21/40 of a $0–$40 scale."""
    pen = make_product("Pen", [("", "8.00", 10)])
    auth.logout()
    auth.login("alice")
    shop.add(pen, 1)
    assert shop.checkout(placed["post"]).status_code == 302
    _age_orders(app, [0, 0], ["paid", "cancelled"])
    auth.logout()
    auth.login("root")
    page = text_of(client.get("/admin/"))
    chart = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    labels = re.findall(r'text-anchor="end" class="axis">([^<]+)<', chart)
    assert labels == ["$0", "$10", "$20", "$30", "$40"]
    assert "on a scale from $0 to $40" in chart
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', chart)]
    assert heights[-1] == pytest.approx(200 * 21 / 40, abs=0.1)
    assert heights[:-1] == [0.0] * 29


def test_low_stock_and_newest_on_dashboard(client: Any, admin: Any, make_product: Any) -> None:
    make_product("Rare Print", [("", "50.00", 1)])
    make_product("Plenty", [("", "5.00", 100)])
    page = text_of(client.get("/admin/"))
    low = page.split("Low in stock")[1].split("Newest members")[0]
    assert "Rare Print" in low and "Plenty" not in low
    assert "root" in page.split("Newest members")[1]


# --- members ---------------------------------------------------------------------------------


def _member_action(client: Any, user: Any, action: str) -> Any:
    return client.post(f"/admin/users/{user.id}/{action}",
                       data={"csrf_token": csrf_token(client, "/admin/users")})


def test_grant_and_revoke_admin(app: Flask, client: Any, admin: Any, make_user: Any) -> None:
    bob = make_user("bob")
    _member_action(client, bob, "grant-admin")
    assert "admin" in text_of(client.get("/admin/users?q=bob")).split("bob@example.com")[1][:200]
    _member_action(client, bob, "revoke-admin")
    assert [(e.entity_id, e.action) for e in events(app, "user")] == [
        ("bob", "grant_admin"), ("bob", "revoke_admin")]


def test_last_admin_cannot_revoke_themselves(app: Flask, client: Any, admin: Any) -> None:
    _member_action(client, admin, "revoke-admin")
    assert "last admin" in text_of(client.get("/admin/users"))
    assert client.get("/admin/").status_code == 200
    assert events(app) == []


def test_deactivated_member_is_logged_out_and_cannot_log_in(app: Flask, admin: Any,
                                                            make_user: Any) -> None:
    from tests.conftest import AuthActions
    bob = make_user("bob")
    bob_client = app.test_client()
    AuthActions(bob_client).login("bob")
    assert bob_client.get("/auth/password").status_code == 200
    root_client = app.test_client()
    AuthActions(root_client).login("root")
    _member_action(root_client, bob, "deactivate")
    assert bob_client.get("/auth/password").status_code == 302  # the session ended
    # The right password of a deactivated account gets the answer a wrong one gets.
    refused = AuthActions(bob_client).login("bob")
    assert refused.status_code == 200
    assert "Invalid username or password." in text_of(refused)
    assert bob_client.get("/auth/password").status_code == 302
    _member_action(root_client, bob, "activate")
    assert AuthActions(bob_client).login("bob").status_code == 302
    assert [e.action for e in events(app, "user")] == ["deactivate", "reactivate"]


def test_admin_cannot_deactivate_themselves(client: Any, admin: Any) -> None:
    _member_action(client, admin, "deactivate")
    assert "cannot deactivate your own" in text_of(client.get("/admin/users"))


def test_unknown_member_action_is_404(client: Any, admin: Any) -> None:
    assert _member_action(client, admin, "delete").status_code == 404


# --- moderation ------------------------------------------------------------------------------


def test_delete_comment_and_unpublish_post(app: Flask, client: Any, auth: Any, make_user: Any) -> None:
    from blog.posts import services as blog
    from blog.posts.models import Comment, Post
    writer = make_user("writer")
    with app.test_request_context():
        post = blog.create_post(writer, "Hello", "Body", "", True)
        comment = blog.add_comment(post, writer, "Spam spam")
    make_user("root", admin=True)
    auth.login("root")
    assert "Spam spam" in text_of(client.get("/admin/comments"))
    client.post(f"/admin/comments/{comment.id}/delete",
                data={"csrf_token": csrf_token(client, "/admin/comments")})
    client.post(f"/admin/posts/{post.id}/unpublish", data={"csrf_token": csrf_token(client, "/admin/posts")})
    with app.app_context():
        assert db.session.get(Comment, comment.id) is None
        assert db.session.get(Post, post.id).published is False
    assert [(e.entity_type, e.action) for e in events(app)] == [("comment", "delete"), ("post", "unpublish")]
    client.post(f"/admin/posts/{post.id}/unpublish", data={"csrf_token": csrf_token(client, "/admin/posts")})
    assert "not published" in text_of(client.get("/admin/posts"))


# --- discounts and shipping --------------------------------------------------------------------


def _discount_form(client: Any, path: str = "/admin/discounts/new", **fields: Any) -> Any:
    data = {"csrf_token": csrf_token(client, path), "code": "spring", "kind": "percentage",
            "value": "15", "active": "y", "starts_at": "", "ends_at": "", "usage_limit": "",
            "min_subtotal": ""}
    data.update(fields)
    return client.post(path, data=data)


def test_create_and_edit_a_discount(app: Flask, client: Any, admin: Any) -> None:
    assert _discount_form(client, usage_limit="50", min_subtotal="20.00").status_code == 302
    with app.app_context():
        discount = db.session.scalar(select(Discount))
        assert (discount.code, discount.kind, discount.percent, discount.usage_limit,
                discount.min_subtotal) == ("SPRING", "percentage", Decimal("15.00"), 50, Decimal("20.00"))
    page = text_of(client.get("/admin/discounts"))
    assert "SPRING" in page and "15% off" in page and "0 / 50" in page
    path = f"/admin/discounts/{discount.id}/edit"
    assert 'value="SPRING"' in client.get(path).get_data(as_text=True)
    _discount_form(client, path, code="SPRING", value="20", active="")
    with app.app_context():
        discount = db.session.get(Discount, discount.id)
        assert (discount.percent, discount.active) == (Decimal("20.00"), False)
    trail = events(app, "discount")
    assert [e.action for e in trail] == ["create", "update"]
    assert trail[1].changes["percent"] == ["15.00", "20.00"] and trail[1].changes["active"] == [True, False]


@pytest.mark.parametrize(("fields", "message"), [
    ({"code": ""}, "This field is required"), ({"code": "no spaces"}, "letters, digits"),
    ({"value": "150"}, "at most 100"), ({"value": "0"}, "between 0.01 and"),
    ({"value": "1.234"}, "two decimal places"), ({"value": "x"}, "an amount such as 12.50"),
    # Non-finite and oversized amounts are refused before any comparison (sNaN raises on one).
    ({"value": "NaN"}, "an amount such as 12.50"), ({"value": "sNaN"}, "an amount such as 12.50"),
    ({"value": "-Infinity"}, "an amount such as 12.50"), ({"value": "1e309"}, "at most 9,999,999.99"),
    ({"value": "9" * 30}, "at most 9,999,999.99"), ({"min_subtotal": "sNaN"}, "an amount such as 12.50"),
    ({"min_subtotal": "Infinity"}, "an amount such as 12.50"),
    ({"usage_limit": "0"}, "between 1 and"), ({"min_subtotal": "-1"}, "between 0 and"),
    ({"starts_at": "2026-05-02T10:00", "ends_at": "2026-05-01T10:00"}, "after the start"),
    ({"kind": "bogus"}, "Not a valid choice"),
])
def test_discount_form_validation(app: Flask, client: Any, admin: Any, fields: dict[str, str],
                                  message: str) -> None:
    response = _discount_form(client, **fields)
    assert response.status_code == 200 and message in text_of(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Discount)) == 0
    assert events(app) == []


def test_duplicate_discount_code_is_a_form_error(app: Flask, client: Any, admin: Any) -> None:
    _discount_form(client)
    response = _discount_form(client, code="Spring", kind="fixed", value="5")
    assert response.status_code == 200 and "already has that code" in text_of(response)
    assert len(events(app, "discount")) == 1


def test_fixed_discount_and_kind_cannot_change(app: Flask, client: Any, admin: Any) -> None:
    _discount_form(client, code="FIVE", kind="fixed", value="5.00")
    with app.app_context():
        discount = db.session.scalar(select(Discount))
        assert (discount.kind, discount.amount, discount.percent) == ("fixed", Decimal("5.00"), None)
    response = _discount_form(client, f"/admin/discounts/{discount.id}/edit", code="FIVE",
                              kind="percentage", value="5")
    assert "cannot change" in text_of(response)


def test_shipping_methods(app: Flask, client: Any, admin: Any) -> None:
    def save(path: str, **fields: str) -> Any:
        return client.post(path, data={"csrf_token": csrf_token(client, path), "name": "Courier",
                                       "price": "12.00", "active": "y", **fields})
    assert save("/admin/shipping/new").status_code == 302
    assert "already has that name" in text_of(save("/admin/shipping/new"))
    assert "two decimal places" in text_of(save("/admin/shipping/new", name="Other", price="1.001"))
    with app.app_context():
        method = db.session.scalar(select(ShippingMethod))
    save(f"/admin/shipping/{method.id}/edit", price="13.50", active="")
    with app.app_context():
        method = db.session.get(ShippingMethod, method.id)
        assert (method.price, method.active) == (Decimal("13.50"), False)
    assert [e.action for e in events(app, "shipping")] == ["create", "update"]
    assert "$13.50" in text_of(client.get("/admin/shipping"))


@pytest.mark.parametrize("price", ["NaN", "sNaN", "Infinity", "-Infinity", "9" * 30, "1e309"])
def test_shipping_price_refuses_non_finite_and_oversized_amounts(app: Flask, client: Any, admin: Any,
                                                                 price: str) -> None:
    response = client.post("/admin/shipping/new", data={
        "csrf_token": csrf_token(client, "/admin/shipping/new"), "name": "Courier", "price": price})
    assert response.status_code == 200
    assert "an amount such as 12.50" in text_of(response) or "at most 9,999,999.99" in text_of(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ShippingMethod)) == 0


@pytest.mark.parametrize("ident", [str(2**31), str(2**63), str(2**64), "9" * 30, "0"])
@pytest.mark.parametrize("path", ["/admin/products/{}/edit", "/admin/discounts/{}/edit",
                                  "/admin/shipping/{}/edit"])
def test_ids_past_the_column_range_in_admin_urls_are_404(client: Any, admin: Any, path: str,
                                                         ident: str) -> None:
    assert client.get(path.format(ident)).status_code == 404


@pytest.mark.parametrize("path", ["/admin/products/{}/delete", "/admin/users/{}/deactivate",
                                  "/admin/comments/{}/delete", "/admin/posts/{}/unpublish"])
def test_ids_past_the_column_range_in_admin_buttons_are_404(client: Any, admin: Any, path: str) -> None:
    token = csrf_token(client, "/admin/users")
    for ident in (str(2**31), str(2**63), str(2**64)):
        assert client.post(path.format(ident), data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("category", [str(2**31), str(2**63), "9" * 30, "-1", "x", "\u0661"])
def test_product_list_ignores_a_category_id_out_of_range(client: Any, admin: Any, make_product: Any,
                                                         category: str) -> None:
    make_product("Mug")
    response = client.get("/admin/products", query_string={"category": category})
    assert response.status_code == 200 and "Mug" in text_of(response)


def test_audit_list_filters_and_paginates(app: Flask, client: Any, admin: Any) -> None:
    from blog.admin.audit import record
    with app.test_request_context(), transaction():
        for n in range(25):
            record("product" if n % 2 else "variant", n, "update", {"stock": [n, n + 1]}, note="restock")
    page = text_of(client.get("/admin/audit?entity=product"))
    assert "variant" not in page.split("<tbody>")[1] and "restock" in page
    second = client.get("/admin/audit?page=2")  # an old numbered link: to its cursor
    assert second.status_code == 302 and "cursor=" in second.headers["Location"]
    assert client.get(second.headers["Location"]).status_code == 200
    assert client.get("/admin/audit?page=3").status_code == 404
    assert page_statements(client, "/admin/audit").count == 2  # no count of the whole log


def test_dashboard_over_seeded_data_equals_python_sums(app: Flask) -> None:
    """Seed a site, then recompute every dashboard figure from the rows in Python."""
    from collections import Counter, defaultdict

    from blog.seed import SeedSizes, seed_site
    from blog.shop.models import OrderItem
    with app.test_request_context():
        seed_site(SeedSizes(users=8, posts=10, products=12, orders=60), seed=3)
        all_orders = list(db.session.scalars(select(Order)))
        lines = list(db.session.scalars(select(OrderItem)))
        from blog.payments.models import Payment

        paid = list(db.session.scalars(select(Payment)))
        days = reports.revenue_per_day(30)
        by_status = reports.orders_by_status()
        top = reports.top_products(10)
    today = utcnow().date()
    live = {o.id: o for o in all_orders if o.status != "cancelled"}
    per_day: dict[Any, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for payment in paid:  # revenue is the payments received (the seed has no refunds)
        if (today - payment.paid_at.date()).days < 30:
            per_day[payment.paid_at.date()] += payment.amount
    assert {d.day: d.revenue for d in days if d.revenue} == dict(per_day)
    assert {o.id for o in all_orders if o.status in ("paid", "shipped", "delivered")} == \
        {p.order_id for p in paid}
    counts = Counter(o.status for o in all_orders)
    assert {s: c for s, (c, _) in by_status.items()} == {s: counts.get(s, 0) for s in by_status}
    assert all(total == sum((o.total for o in all_orders if o.status == s), Decimal("0.00"))
               for s, (_, total) in by_status.items())
    revenue: dict[Any, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for line in lines:
        if line.order_id in live:
            revenue[line.product_id] += line.unit_price * line.quantity
    best = sorted(revenue.values(), reverse=True)[:10]
    assert [t.revenue for t in top] == best


def test_discount_per_customer_limit_is_set_and_cleared(app: Flask, client: Any, admin: Any) -> None:
    assert 'name="per_customer_limit"' in client.get("/admin/discounts/new").get_data(as_text=True)
    assert _discount_form(client, per_customer_limit="1").status_code == 302
    with app.app_context():
        discount = db.session.scalar(select(Discount))
        assert discount.per_customer_limit == 1
    path = f"/admin/discounts/{discount.id}/edit"
    assert re.search(r'name="per_customer_limit"[^>]* value="1"', client.get(path).get_data(as_text=True))
    response = _discount_form(client, path, code="SPRING", per_customer_limit="0")
    assert response.status_code == 200 and "between 1 and" in text_of(response)
    assert _discount_form(client, path, code="SPRING", per_customer_limit="").status_code == 302
    with app.app_context():
        assert db.session.get(Discount, discount.id).per_customer_limit is None
    assert events(app, "discount")[-1].changes["per_customer_limit"] == [1, None]
