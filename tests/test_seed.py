"""``flask seed``: demo data that is reproducible, refuses a site with data unless forced,
keeps every invariant the site relies on, and is written in bulk."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.orm import aliased, selectinload

from blog.accounts.models import Role, User, user_roles
from blog.database import count_statements, utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.posts.models import Comment, Post, Tag, follows, likes, post_tags
from blog.posts.services import normalize_tag
from blog.rendering import excerpt_of, render_markdown
from blog.security import check_password
from blog.seed import DEMO_PASSWORD, REFUSAL, SeedError, SeedSizes, seed_site
from blog.shop.checkout import ORDER_NUMBER_ALPHABET
from blog.shop.models import (
    Cart,
    Category,
    Discount,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    ShippingMethod,
    Variant,
)
from blog.shop.pricing import ZERO, round_cents, tax_on
from tests.conftest import undone

SMALL = ["--users", "8", "--posts", "24", "--products", "10", "--orders", "20"]
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # A tax rate, so that seeded orders show (and the tests check) the tax rule at work.
    return {"SHOP_TAX_RATE": "0.2"}


def seed(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["seed", *args])


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def snapshot(app: Flask, *, times: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Every seeded row, by natural keys instead of ids (PostgreSQL's sequences do not roll
    back), sorted; with or without timestamps. Password hashes are left out: bcrypt salts
    are random by design."""
    def keep(*values: Any) -> tuple[Any, ...]:
        return tuple(v for v in values if times or not isinstance(v, datetime))

    author, follower, followed = aliased(User), aliased(User), aliased(User)
    with app.app_context():
        s = db.session
        return {name: sorted((keep(*row) for row in s.execute(stmt)), key=repr) for name, stmt in {
            "users": select(User.username, User.email, User.active, User.created_at, User.updated_at),
            "roles": select(User.username, Role.name).select_from(User).join(user_roles).join(Role),
            "carts": select(User.username, Cart.created_at).select_from(User)
            .join(Cart, Cart.user_id == User.id),
            "follows": select(follower.username, followed.username, follows.c.created_at)
            .select_from(follows).join(follower, follower.id == follows.c.follower_id)
            .join(followed, followed.id == follows.c.followed_id),
            "posts": select(Post.slug, Post.title, Post.body, Post.body_html, Post.excerpt,
                            Post.published, Post.published_at, author.username, Post.created_at)
            .select_from(Post).join(author, author.id == Post.author_id),
            "tags": select(Post.slug, Tag.name).select_from(Post)
            .join(post_tags, post_tags.c.post_id == Post.id).join(Tag, Tag.id == post_tags.c.tag_id),
            "comments": select(Post.slug, author.username, Comment.body, Comment.created_at)
            .select_from(Comment).join(Post, Post.id == Comment.post_id)
            .join(author, author.id == Comment.author_id),
            "likes": select(Post.slug, User.username, likes.c.created_at)
            .select_from(likes).join(Post, Post.id == likes.c.post_id).join(User, User.id == likes.c.user_id),
            "products": select(Product.slug, Product.name, Product.description, Category.slug,
                               Product.active, Product.created_at)
            .select_from(Product).outerjoin(Category, Category.id == Product.category_id),
            "variants": select(Product.slug, Variant.label, Variant.sku, Variant.price, Variant.stock)
            .select_from(Variant).join(Product, Product.id == Variant.product_id),
            "shipping": select(ShippingMethod.name, ShippingMethod.price, ShippingMethod.active),
            "discounts": select(Discount.code, Discount.kind, Discount.percent, Discount.times_used),
            "orders": select(Order.number, Order.checkout_token, User.username, Order.status,
                             Order.full_name, Order.address_line1, Order.address_line2, Order.city,
                             Order.postal_code, Order.country, Order.shipping_method_name,
                             Order.discount_code, Order.subtotal, Order.discount_amount,
                             Order.shipping_price, Order.tax, Order.total, Order.created_at,
                             Order.updated_at).select_from(Order).join(User, User.id == Order.user_id),
            "order_items": select(Order.number, OrderItem.product_name, OrderItem.variant_label,
                                  OrderItem.sku, OrderItem.unit_price, OrderItem.quantity)
            .select_from(OrderItem).join(Order, Order.id == OrderItem.order_id),
        }.items()}


def check_invariants(app: Flask) -> None:
    """What the site assumes of its data, checked on everything in the database."""
    with app.app_context():
        s = db.session
        # Members: lookup keys in step, one cart each, the admin role and the demo passwords.
        for user in s.scalars(select(User)):
            assert user.username_key == user.username.lower()
            assert user.email_key == user.email.lower()
        assert s.scalar(select(func.count()).select_from(User).where(
            ~select(Cart.id).where(Cart.user_id == User.id).exists())) == 0
        assert s.scalar(select(func.count(Cart.user_id.distinct()))) == count(Cart) == count(User)
        admins = list(s.scalars(select(User).join(user_roles).join(Role).where(Role.name == "admin")))
        assert admins and all(check_password(a.password_hash, DEMO_PASSWORD) for a in admins)
        # Roles: whoever wrote may write (author or admin); an editor per seeding; the demo
        # readers ("reader", "reader2" …) and other members hold none, and see what readers see.
        writers = set(s.scalars(select(User.username).where(
            User.roles.any(Role.name.in_(("author", "admin"))))))
        assert set(s.scalars(select(User.username).join(Post.author))) <= writers
        editors = set(s.scalars(select(User.username).where(User.roles.any(name="editor"))))
        assert editors and editors <= writers
        readers = set(s.scalars(select(User.username).where(~User.roles.any())))
        assert {"reader"} <= readers and any(not name.startswith("reader") for name in readers)
        assert not {name for name in writers if re.fullmatch(r"reader\d*", name)}

        # Posts: HTML and excerpt are what saving the post through the site would store.
        for post in s.scalars(select(Post).options(selectinload(Post.tags))):
            assert post.body_html == render_markdown(post.body), post.slug
            # The copy of the tags the search index reads, as the post service writes it.
            assert post.tag_names == " ".join(sorted(tag.name for tag in post.tags)), post.slug
            assert post.excerpt == excerpt_of(post.body_html), post.slug
            assert post.published == (post.published_at is not None)
            assert post.published_at is None or post.published_at < utcnow()
        for name in s.scalars(select(Tag.name)):
            assert name == normalize_tag(name)
        # Likes and comments on published posts only, after publication; nobody follows
        # themselves.
        for published, published_at, when in s.execute(
                select(Post.published, Post.published_at, likes.c.created_at)
                .join(likes, likes.c.post_id == Post.id)):
            assert published and when > published_at
        for published, published_at, when in s.execute(
                select(Post.published, Post.published_at, Comment.created_at)
                .join(Comment, Comment.post_id == Post.id)):
            assert published and when > published_at
        assert all(a != b for a, b in s.execute(select(follows.c.follower_id, follows.c.followed_id)))

        # Catalogue: single- and multi-variant products, some sold out, some nearly.
        per_product = dict(s.execute(
            select(Variant.product_id, func.count()).group_by(Variant.product_id)).all())
        assert set(per_product) == set(s.scalars(select(Product.id)))
        assert 1 in per_product.values() and max(per_product.values()) > 1
        assert s.scalar(select(func.count()).where(Variant.label == "", Variant.product_id.in_(
            [pid for pid, n in per_product.items() if n == 1]))) == sum(n == 1 for n in per_product.values())
        stocks = list(s.scalars(select(Variant.stock)))
        assert min(stocks) == 0 and any(1 <= n <= 3 for n in stocks) and max(stocks) > 3
        assert all(price > ZERO for price in s.scalars(select(Variant.price)))

        # Orders: every status; amounts add up by the shop's own rules; lines are snapshots.
        rate = Decimal(app.config["SHOP_TAX_RATE"])
        shipping = dict(s.execute(select(ShippingMethod.id, ShippingMethod.price)).all())
        orders = list(s.scalars(select(Order).options(selectinload(Order.items))))
        assert {order.status for order in orders} == set(OrderStatus.ALL)
        number = re.compile(f"IW-[{ORDER_NUMBER_ALPHABET}]{{8}}")
        now = utcnow()
        for order in orders:
            assert number.fullmatch(order.number)
            assert now - timedelta(days=61) < order.created_at <= order.updated_at < now
            assert order.subtotal == sum((item.line_total for item in order.items), ZERO) > ZERO
            expected_discount = round_cents(order.subtotal / 10) if order.discount_code else ZERO
            assert order.discount_amount == expected_discount
            assert order.shipping_price == shipping[order.shipping_method_id]
            assert order.tax == tax_on(order.subtotal - order.discount_amount, rate)
            assert order.total == (order.subtotal - order.discount_amount + order.shipping_price
                                   + order.tax)
            for item in order.items:
                variant = s.get(Variant, item.variant_id)
                assert (item.product_id, item.product_name, item.variant_label, item.sku,
                        item.unit_price) == (variant.product_id, variant.product.name,
                                             variant.label, variant.sku, variant.price)
        assert any(order.discount_code for order in orders)
        assert any(order.tax > ZERO for order in orders)
        for discount in s.scalars(select(Discount)):
            assert discount.times_used == s.scalar(
                select(func.count()).where(Order.discount_id == discount.id,
                                           Order.status != OrderStatus.CANCELLED))


# --- the command ---------------------------------------------------------------------------


def test_seed_makes_a_demo_site_that_keeps_every_invariant(app, runner):
    result = seed(runner, "--seed", "7", *SMALL)
    assert result.exit_code == 0, result.output
    assert "Added with --seed 7 in " in result.output
    assert "admin:  admin / inkwell-demo" in result.output
    assert "member: reader / inkwell-demo" in result.output
    assert "Seeding" not in result.stderr  # no progress bar for a small site
    # A login to try each role with: the editor, and an author who is nothing more.
    editor = re.search(r"editor: (\S+) / inkwell-demo", result.output)
    author = re.search(r"author: (\S+) / inkwell-demo", result.output)
    assert editor and author, result.output
    assert re.search(r"8 members \(1 admin, 1 editor, \d+ authors, \d+ deactivated\)", result.output)
    with app.app_context():
        roles = {name: sorted(r.name for r in user.roles) for name, user in (
            (name, db.session.scalar(select(User).where(User.username == name)
                                     .options(selectinload(User.roles))))
            for name in (editor[1], author[1]))}
    assert roles == {editor[1]: ["author", "editor"], author[1]: ["author"]}
    with app.app_context():
        assert (count(User), count(Post), count(Product), count(Order)) == (8, 24, 10, 20)
        assert count(Category) == 5 and count(ShippingMethod) == 3 and count(Comment) > 0
        assert db.session.scalar(select(func.count()).select_from(likes)) > 0
        assert db.session.scalar(select(func.count()).select_from(follows)) > 0
        assert db.session.scalar(select(Discount.code)) == "WELCOME10"
        reader = db.session.scalar(select(User).where(User.username == "reader")
                                   .options(selectinload(User.roles)))
        assert check_password(reader.password_hash, DEMO_PASSWORD) and not reader.is_admin
    check_invariants(app)


def test_same_seed_gives_the_same_data(app, runner):
    with undone(app):
        assert seed(runner, "--seed", "7", *SMALL).exit_code == 0
        by_command = snapshot(app, times=False)
    with undone(app):  # the same seed on the same empty site, through the service
        with app.app_context():
            seed_site(SeedSizes(8, 24, 10, 20), seed=7, anchor=ANCHOR)
        first = snapshot(app, times=True)
    assert snapshot(app, times=False) == {key: [] for key in first}  # really undone
    with undone(app):
        with app.app_context():
            seed_site(SeedSizes(8, 24, 10, 20), seed=7, anchor=ANCHOR)
        assert snapshot(app, times=True) == first  # timestamps too, given the same anchor
        assert snapshot(app, times=False) == by_command
    with app.app_context():
        seed_site(SeedSizes(8, 24, 10, 20), seed=8, anchor=ANCHOR)
    other = snapshot(app, times=False)
    assert other["posts"] != by_command["posts"] and other["orders"] != by_command["orders"]


def test_seed_refuses_a_site_with_data(app, runner, make_user):
    make_user("alice")
    result = seed(runner, "--seed", "7")
    assert result.exit_code == 1
    assert REFUSAL in result.output
    with app.app_context():
        assert (count(User), count(Post), count(Product), count(Order)) == (1, 0, 0, 0)


def test_seed_refuses_a_shop_without_members(app, runner, make_product):
    make_product("Poster")
    result = seed(runner, "--seed", "7")
    assert result.exit_code == 1 and REFUSAL in result.output
    with app.app_context():
        assert (count(User), count(Product)) == (0, 1)


def test_force_adds_to_a_seeded_site_without_clashing(app, runner):
    assert seed(runner, "--seed", "7", *SMALL).exit_code == 0
    # The same seed again: every username, slug, SKU, code and number it draws is taken.
    result = seed(runner, "--seed", "7", "--force", *SMALL)
    assert result.exit_code == 0, result.output
    assert "admin:  admin2 / inkwell-demo" in result.output
    assert "member: reader2 / inkwell-demo" in result.output
    with app.app_context():
        assert (count(User), count(Post), count(Product), count(Order)) == (16, 48, 20, 40)
        # Shared vocabulary is reused, not duplicated.
        assert (count(Category), count(ShippingMethod)) == (5, 3)
        assert sorted(db.session.scalars(select(Discount.code))) == ["WELCOME10", "WELCOME10-2"]
        admin2 = db.session.scalar(select(User).where(User.username == "admin2")
                                   .options(selectinload(User.roles)))
        assert admin2.is_admin
    check_invariants(app)


def test_if_empty_seeds_once_then_only_prints_the_logins(app, runner, make_user):
    first = seed(runner, "--if-empty", "--seed", "3", *SMALL)
    assert first.exit_code == 0, first.output
    assert "Added with --seed 3" in first.output
    with app.app_context():
        users = count(User)

    printed = [line for line in first.output.splitlines() if line.startswith(("  editor:", "  author:"))]
    assert len(printed) == 2
    again = seed(runner, "--if-empty")  # what every later `make run` does
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [
        "The site already has data; not seeding.",
        "Log in at /auth/login as:",
        "  admin:  admin / inkwell-demo",
        *printed,  # the same editor and author as the seeding printed
        "  member: reader / inkwell-demo  (every demo member has this password)",
    ]
    with app.app_context():
        assert count(User) == users

    with app.app_context(), transaction():  # the owner changed the demo admin's password
        db.session.scalar(select(User).where(User.username == "admin")).password_hash = "x"
    lines = seed(runner, "--if-empty").output.splitlines()
    assert lines[0] == "The site already has data; not seeding."
    assert not any("admin:" in line for line in lines) and any("reader" in line for line in lines)


def test_if_empty_says_nothing_about_logins_on_a_site_it_did_not_seed(app, runner, make_user):
    make_user("alice")
    result = seed(runner, "--if-empty")
    assert result.exit_code == 0
    assert result.output == "The site already has data; not seeding.\n"


@pytest.mark.parametrize("args, message", [
    (["--force", "--if-empty"], "contradict"),
    (["--users", "1"], "--users"),
    (["--products", "0", "--orders", "3"], "Orders need products"),
    (["--admin-password", "short"], "at least 8 characters"),
])
def test_seed_rejects_bad_options(app, runner, args, message):
    result = seed(runner, *args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert count(User) == 0


def test_seed_without_posts_or_orders(app, runner):
    result = seed(runner, "--users", "2", "--posts", "0", "--products", "0", "--orders", "0",
                  "--admin-password", "another-password")
    assert result.exit_code == 0, result.output
    assert "admin:  admin / another-password" in result.output
    with app.app_context():
        assert (count(User), count(Post), count(Product), count(Order)) == (2, 0, 0, 0)
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        assert check_password(admin.password_hash, "another-password")


def test_seed_writes_in_bulk_with_a_progress_bar(app, runner):
    with count_statements() as counted:
        result = seed(runner, "--seed", "1", "--users", "20", "--posts", "5000",
                      "--products", "10", "--orders", "20")
    assert result.exit_code == 0, result.output
    assert "Seeding" in result.stderr  # click prints the bar's label once when not a terminal
    assert "Seeding" not in result.stdout
    with app.app_context():
        rows = (count(Post) + count(Comment) + count(User) + count(Order) + count(OrderItem)
                + db.session.scalar(select(func.count()).select_from(likes))
                + db.session.scalar(select(func.count()).select_from(post_tags)))
    assert rows > 15_000
    # A statement per chunk of rows (per 1000 rows with RETURNING), not per row.
    assert counted.count < 80, counted.count


@pytest.mark.parametrize("sizes, anchor, message", [
    (SeedSizes(users=1), ANCHOR, "at least 2"),
    (SeedSizes(posts=-1), ANCHOR, "negative"),
    (SeedSizes(), datetime(2026, 1, 1), "timezone-aware"),
])
def test_seed_site_rejects_bad_input(app, sizes, anchor, message):
    with app.app_context():
        with pytest.raises(SeedError, match=message):
            seed_site(sizes, seed=1, anchor=anchor)
        assert count(User) == 0


def test_seed_site_needs_the_admin_role(app):
    with app.app_context():
        with transaction() as session:
            session.execute(delete(Role))
        with pytest.raises(SeedError, match="no 'admin' role"):
            seed_site(SeedSizes(), seed=1)
        assert count(User) == 0
