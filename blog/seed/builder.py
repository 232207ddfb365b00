"""The seeder: one run's random streams, its transaction, and the rows it writes.

:class:`Seeder` makes the site part by part (members and carts, follows, the blog, the
shop, orders), each part from its own random stream (:func:`_stream`), so that changing
one size leaves the other parts' rows as they were. Rows are written in bulk
(:mod:`blog.seed.bulk`) and their ids read back by a unique natural key, because a multi-row
``RETURNING`` gives no order to rely on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Session

from blog.accounts.models import ADMIN, AUTHOR, EDITOR, Role, User, lookup_key, user_roles
from blog.database import core_table
from blog.posts.models import Comment, Post, Tag, follows, likes, post_tags
from blog.seed.bodies import BodyPool
from blog.seed.bulk import CHUNK_SIZE, insert_rows
from blog.seed.results import DEMO_ADMIN, DEMO_MEMBER, DISCOUNT_CODE, SeedError, SeedSizes
from blog.seed.words import (
    CATALOGUE,
    COMMENT_SENTENCES,
    DESCRIPTIONS,
    FIRST_NAMES,
    LAST_NAMES,
    PLACES,
    PRODUCT_ADJECTIVES,
    SHIPPING_METHODS,
    STATUS_AGE_DAYS,
    STATUS_WEIGHTS,
    STREETS,
    TAG_NAMES,
    TITLE_OPENERS,
    TITLE_TAILS,
    TITLE_TOPICS,
)
from blog.shop.checkout import ORDER_NUMBER_ALPHABET
from blog.shop.models import (
    Cart,
    Category,
    Discount,
    Order,
    OrderItem,
    OrderStatus,
    PercentageDiscount,
    Product,
    ShippingMethod,
    Variant,
)
from blog.shop.pricing import ZERO, compute_totals, parse_rate
from blog.text import slugify


def _stream(seed: int, part: str) -> random.Random:
    """An independent, reproducible random stream for one part of the site. (A string seed
    is hashed with SHA-512 by ``random``, not with Python's per-process string hash.)"""
    return random.Random(f"inkwell-seed:{seed}:{part}")


class _Claims:
    """Unique values, as the site makes slugs: ``base``, else ``base-2``, ``base-3`` …, the
    first that is free. The next number is remembered per base, so thousands of posts with
    one title stay linear rather than quadratic."""

    def __init__(self, taken: Iterable[str], separator: str = "-") -> None:
        self.taken = set(taken)
        self.separator = separator
        self._next: dict[str, int] = {}

    def claim(self, base: str, free: Callable[[str], bool] = lambda value: True) -> str:
        """The first free value for ``base`` (``free`` may add a condition); now taken."""
        number = self._next.get(base, 1)
        while True:
            value = base if number == 1 else f"{base}{self.separator}{number}"
            number += 1
            if value not in self.taken and free(value):
                self._next[base] = number
                self.taken.add(value)
                return value


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


@dataclass
class _Member:
    id: int
    username: str
    full_name: str
    active: bool
    created_at: datetime


class Seeder:
    """One seeding run: its random streams, its transaction, and what it has made."""

    def __init__(self, session: Session, sizes: SeedSizes, seed: int, anchor: datetime,
                 progress: Callable[[int], None] | None) -> None:
        self.session = session
        self.sizes = sizes
        self.seed = seed
        self.anchor = anchor
        self.progress = progress or (lambda count: None)
        self.counts: dict[str, int] = {}
        self.members: list[_Member] = []
        #: The demo logins for writing: the editor, and an author who is only an author.
        self.editor: _Member | None = None
        self.author: _Member | None = None

    def _insert(self, into: Table | type[DeclarativeBase], rows: Sequence[dict[str, Any]],
                *returning: str) -> list[Row[*tuple[Any, ...]]]:
        """:func:`~blog.seed.bulk.insert_rows` in this run's transaction."""
        return insert_rows(self.session, into, rows, *returning)

    def _ago(self, rng: random.Random, low_days: float, high_days: float) -> datetime:
        """A moment between ``low_days`` and ``high_days`` before the anchor, to the second."""
        return self.anchor - timedelta(seconds=rng.randint(int(low_days * 86400) + 1,
                                                           int(high_days * 86400)))

    # members --------------------------------------------------------------------------

    def members_and_carts(self, admin_hash: str, member_hash: str) -> None:
        """The demo admin, the demo member and generated members, each with a cart."""
        rng = _stream(self.seed, "members")
        session = self.session
        admin_role = session.scalar(select(Role.id).where(Role.name == ADMIN))
        if admin_role is None:  # the first migration makes it
            raise SeedError(f"There is no {ADMIN!r} role; run `flask db upgrade` first.")
        # "admin", else "admin2", "admin3" …: the first whose email is free too. Generated
        # names are lower-case, so a name is its own lookup key.
        usernames = _Claims(session.scalars(select(User.username_key)), separator="")
        emails = set(session.scalars(select(User.email_key)))

        people: list[tuple[str, str, bool]] = [(DEMO_ADMIN, "Demo Admin", True),
                                               (DEMO_MEMBER, "Demo Reader", True)]
        for _ in range(self.sizes.users - 2):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            # About one member in twenty has been deactivated, for the admin's member list.
            people.append((f"{first}_{last}", f"{first.title()} {last.title()}", rng.random() >= 0.05))
        rows: list[dict[str, Any]] = []
        for index, (base, _full_name, active) in enumerate(people):
            username = usernames.claim(base, lambda name: f"{name}@example.com" not in emails)
            created = self._ago(rng, 760, 1100)
            rows.append({"username": username, "username_key": lookup_key(username),
                         "email": f"{username}@example.com",
                         "email_key": f"{lookup_key(username)}@example.com",
                         "password_hash": admin_hash if index == 0 else member_hash,
                         "active": active, "created_at": created, "updated_at": created})
        ids = {key: user_id for user_id, key in
                   self._insert(User, rows, "id", "username_key")}
        self.members = [_Member(ids[row["username_key"]], row["username"], full_name,
                                row["active"], row["created_at"])
                        for row, (_, full_name, _) in zip(rows, people, strict=True)]

        session.execute(insert(user_roles), [{"user_id": self.members[0].id, "role_id": admin_role}])
        # Registration gives every member a cart; so does seeding.
        self._insert(Cart, [{"user_id": m.id, "created_at": m.created_at, "updated_at": m.created_at}
                              for m in self.members])
        self.counts.update(users=len(self.members), admins=1,
                           inactive=sum(not m.active for m in self.members))
        self.progress(len(self.members))

    def _writer_roles(self, writers: list[_Member], weights: list[int]) -> None:
        """Those who write are authors; the most prolific of them is also an editor."""
        roles = dict(self.session.execute(
            select(Role.name, Role.id).where(Role.name.in_((AUTHOR, EDITOR)))).all())
        if len(roles) < 2:  # made by the 0009_roles migration
            raise SeedError("The author and editor roles are missing; run `flask db upgrade` first.")
        rows = [{"user_id": m.id, "role_id": roles[AUTHOR]} for m in writers]
        if writers:
            editor = max(zip(weights, writers, strict=True), key=lambda pair: pair[0])[1]
            rows.append({"user_id": editor.id, "role_id": roles[EDITOR]})
            self.editor = editor
            self.author = next((m for m in writers if m is not editor), None)
        self._insert(user_roles, rows)
        self.counts.update(authors=len(writers), editors=1 if writers else 0)

    def follows(self) -> None:
        """Active members follow a few others, after both joined."""
        rng = _stream(self.seed, "follows")
        rows = []
        others = len(self.members) - 1
        for index, member in enumerate(self.members):
            if not member.active:
                continue
            count = min(others, rng.choice((0, 1, 2, 3, 5, 8)))
            # Sample among everyone else: indices past ``index`` shift by one to skip self.
            for other in rng.sample(range(others), count):
                followed = self.members[other + (other >= index)]
                since = max(member.created_at, followed.created_at)
                rows.append({"follower_id": member.id, "followed_id": followed.id,
                             "created_at": since + timedelta(seconds=rng.randint(60, 200 * 86400))})
        self._insert(follows, rows)
        self.counts["follows"] = len(rows)

    # the blog -------------------------------------------------------------------------

    def blog(self) -> None:
        """Tags, then posts (a few drafts) in chunks, with their tags, comments and likes."""
        rng = _stream(self.seed, "posts")
        session = self.session
        pool = BodyPool.build(rng)

        # Tags are shared topics: reuse those that exist, create the rest.
        tag_ids = dict(session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(TAG_NAMES))).all())
        new_tags = [{"name": name} for name in TAG_NAMES if name not in tag_ids]
        tag_ids.update((name, tag_id) for tag_id, name in
                       self._insert(Tag, new_tags, "id", "name"))
        tag_list = [tag_ids[name] for name in TAG_NAMES]
        tag_names = {tag_id: name for name, tag_id in tag_ids.items()}
        self.counts["tags"] = len(new_tags)

        # The admin and about half the others write (the demo reader never: that login shows
        # what a plain reader sees); a few of them write most of the posts.
        # (By position: on a seeded site, --force names them admin2 and reader2.)
        active = [m for m in self.members[2:] if m.active]
        writers = [self.members[0]] + [m for m in active if rng.random() < 0.5]
        weights = [rng.choice((1, 1, 2, 4, 8)) for _ in writers]
        self._writer_roles(writers[1:], weights[1:])
        cumulative = [sum(weights[:i + 1]) for i in range(len(weights))]

        slugs = _Claims(session.scalars(select(Post.slug)))

        counts = {"posts": 0, "drafts": 0, "comments": 0, "likes": 0}
        for start in range(0, self.sizes.posts, CHUNK_SIZE):
            size = min(CHUNK_SIZE, self.sizes.posts - start)
            posts: list[dict[str, Any]] = []
            for _ in range(size):
                title = (rng.choice(TITLE_OPENERS) + " " + rng.choice(TITLE_TOPICS)
                         + rng.choice(TITLE_TAILS))
                title = title[0].upper() + title[1:]
                body, body_html, excerpt = pool.body(rng)
                author = rng.choices(writers, cum_weights=cumulative)[0]
                published = rng.random() >= 0.05
                published_at: datetime | None = None
                if published:
                    published_at = self._ago(rng, 1 / 24, 730)
                    created = published_at - timedelta(minutes=rng.randint(5, 600))
                else:
                    created = self._ago(rng, 1 / 24, 60)
                posts.append({"title": title, "slug": slugs.claim(slugify(title)), "body": body,
                              "body_html": body_html, "excerpt": excerpt, "published": published,
                              "published_at": published_at, "author_id": author.id,
                              "created_at": created, "updated_at": created})
            ids = {slug: post_id for post_id, slug in
                       self._insert(Post, posts, "id", "slug")}

            tags_rows, comment_rows, like_rows = [], [], []
            for post in posts:  # in generation order, so the draws do not depend on ids
                post_id = ids[post["slug"]]
                for tag_id in rng.sample(tag_list, rng.choice((0, 1, 1, 2, 2, 3))):
                    tags_rows.append({"post_id": post_id, "tag_id": tag_id})
                if not post["published"]:
                    counts["drafts"] += 1
                    continue
                when = post["published_at"]
                for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3, 5))):
                    said = min(when + timedelta(seconds=rng.randint(600, 20 * 86400)),
                               self.anchor - timedelta(seconds=1))
                    text = " ".join(rng.sample(COMMENT_SENTENCES, rng.randint(1, 2)))
                    comment_rows.append({"post_id": post_id, "author_id": rng.choice(active).id,
                                         "body": text, "created_at": said, "updated_at": said})
                for liker in rng.sample(active, min(len(active), rng.choice((0, 1, 1, 2, 3, 5)))):
                    liked = min(when + timedelta(seconds=rng.randint(60, 30 * 86400)),
                                self.anchor - timedelta(seconds=1))
                    like_rows.append({"user_id": liker.id, "post_id": post_id, "created_at": liked})
            self._insert(post_tags, tags_rows)
            self._copy_tag_names(tags_rows, tag_names)
            self._insert(Comment, comment_rows)
            self._insert(likes, like_rows)
            counts["posts"] += len(posts)
            counts["comments"] += len(comment_rows)
            counts["likes"] += len(like_rows)
            self.progress(len(posts))
        self.counts.update(counts)

    def _copy_tag_names(self, tags_rows: list[dict[str, Any]], names: dict[int, str]) -> None:
        """Write each tagged post's ``tag_names`` (what the search index reads), as the post
        service does; after the tags are drawn, so the random draws stay as they were."""
        tagged: dict[int, list[str]] = {}
        for row in tags_rows:
            tagged.setdefault(row["post_id"], []).append(names[row["tag_id"]])
        if not tagged:
            return
        posts = core_table(Post)
        self.session.execute(
            update(posts).where(posts.c.id == bindparam("tagged_id")).values(tag_names=bindparam("joined")),
            [{"tagged_id": post_id, "joined": " ".join(sorted(found))} for post_id, found in tagged.items()])

    # the shop -------------------------------------------------------------------------

    def pages(self) -> None:
        """An About page in the navigation and a Contact page in the footer, unless pages
        with those addresses exist (a second seed with --force keeps the admin's)."""
        from blog.pages.models import Page
        from blog.rendering import excerpt_of, render_markdown

        pages = [
            ("about", "About", "nav", ABOUT_PAGE),
            ("contact", "Contact", "footer", CONTACT_PAGE),
        ]
        taken = set(self.session.scalars(select(Page.slug).where(Page.slug.in_([p[0] for p in pages]))))
        rows = []
        for position, (slug, title, place, body) in enumerate(pages):
            if slug in taken:
                continue
            html = render_markdown(body)
            rows.append({"slug": slug, "title": title, "body": body, "body_html": html,
                         "excerpt": excerpt_of(html), "place": place, "position": position,
                         "created_at": self.anchor, "updated_at": self.anchor})
        self._insert(Page, rows)
        self.counts["pages"] = len(rows)

    def shop(self) -> tuple[list[dict[str, Any]], list[tuple[int, str, Decimal]], dict[str, Any]]:
        """Categories, products and variants, shipping methods and the discount code.
        Returns the variants (with their product), the shipping methods and the discount."""
        rng = _stream(self.seed, "shop")
        session = self.session

        category_ids = dict(session.execute(select(Category.slug, Category.id)).all())
        new_categories = [{"name": name, "slug": slugify(name)} for name, *_ in CATALOGUE
                          if slugify(name) not in category_ids]
        category_ids.update((slug, category_id) for category_id, slug in self._insert(
            Category, new_categories, "id", "slug"))
        self.counts["categories"] = len(new_categories)

        slugs = _Claims(session.scalars(select(Product.slug)))
        skus = _Claims(session.scalars(select(Variant.sku).where(Variant.sku.is_not(None))))
        products, variant_specs = [], []
        for number in range(1, self.sizes.products + 1):
            category, nouns, label_sets, (low, high) = rng.choice(CATALOGUE)
            name = f"{rng.choice(PRODUCT_ADJECTIVES)} {rng.choice(nouns)}"
            slug = slugs.claim(slugify(name))
            created = self._ago(rng, 100, 400)
            products.append({
                "name": name, "slug": slug, "category_id": category_ids[slugify(category)],
                "description": " ".join(rng.sample(DESCRIPTIONS, rng.randint(1, 3))),
                "active": rng.random() >= 0.08, "created_at": created, "updated_at": created,
            })
            labels = rng.choice(label_sets) or ("",)
            if len(labels) > 1:
                labels = labels[:rng.randint(2, len(labels))]
            base_cents = rng.randrange(low, high, 50)  # whole or half units: 12.00, 12.50
            for step, label in enumerate(labels):
                # Larger formats cost more; sizes of a garment cost the same.
                cents = base_cents if category == "Clothing" else base_cents + step * 50 * rng.randint(4, 12)
                roll = rng.random()
                stock = 0 if roll < 0.08 else rng.randint(1, 3) if roll < 0.2 else rng.randint(4, 60)
                sku_base = f"{slugify(category)[:4].upper()}-{number:05d}"
                sku = skus.claim(f"{sku_base}-{slugify(label).upper()}" if label else sku_base)
                variant_specs.append((slug, {"label": label, "sku": sku, "price": _money(cents),
                                             "stock": stock}))
        product_ids = {slug: product_id for product_id, slug in self._insert(
            Product, products, "id", "slug")}
        names = {product["slug"]: product["name"] for product in products}
        variants = [{"product_id": product_ids[slug], **spec} for slug, spec in variant_specs]
        variant_ids = {sku: variant_id for variant_id, sku in self._insert(
            Variant, variants, "id", "sku")}
        sold = [{**variant, "id": variant_ids[variant["sku"]], "product_name": names[slug]}
                for (slug, _), variant in zip(variant_specs, variants, strict=True)]
        self.counts.update(products=len(products), variants=len(variants))
        self.progress(len(products))

        # Shipping methods are unique by name: reuse any that exist (with their price).
        shipping = {name: (method_id, price) for method_id, name, price in
                    session.execute(select(ShippingMethod.id, ShippingMethod.name, ShippingMethod.price))}
        new_methods = [{"name": name, "price": Decimal(price), "active": True}
                       for name, price in SHIPPING_METHODS if name not in shipping]
        shipping.update((name, (method_id, price)) for method_id, name, price in self._insert(
            ShippingMethod, new_methods, "id", "name", "price"))
        methods = [(shipping[name][0], name, shipping[name][1]) for name, _ in SHIPPING_METHODS]
        self.counts["shipping_methods"] = len(new_methods)

        code = _Claims(session.scalars(select(Discount.code))).claim(DISCOUNT_CODE)
        created = self._ago(rng, 90, 120)
        [(discount_id,)] = self._insert(Discount, [{
            "kind": "percentage", "code": code, "active": True, "starts_at": None,
            "ends_at": None, "usage_limit": None, "times_used": 0, "min_subtotal": None,
            "percent": Decimal("10.00"), "amount": None, "created_at": created, "updated_at": created,
        }], "id")
        # Worked out by the discount class itself, so the rule lives in one place.
        discount = {"id": discount_id, "code": code,
                    "rule": PercentageDiscount(code=code, percent=Decimal("10.00"))}
        return sold, methods, discount

    def orders(self, variants: list[dict[str, Any]], methods: list[tuple[int, str, Decimal]],
               discount: dict[str, Any]) -> None:
        """Past orders of ``variants`` in every status, priced as checkout prices them, some
        with ``discount`` (whose use count then matches)."""
        rng = _stream(self.seed, "orders")
        session = self.session
        rate = parse_rate(current_app.config["SHOP_TAX_RATE"])
        customers = [m for m in self.members[1:] if m.active] or self.members[:1]
        taken_numbers = set(session.scalars(select(Order.number)))
        taken_tokens = set(session.scalars(select(Order.checkout_token)))
        status_counts = dict.fromkeys(OrderStatus.ALL, 0)
        discounted = uses = 0
        orders, lines = [], []
        for index in range(self.sizes.orders):
            # The first five cover every status, so the admin pages have one of each.
            status = (OrderStatus.ALL[index] if index < len(OrderStatus.ALL)
                      else rng.choices(*STATUS_WEIGHTS)[0])
            status_counts[status] += 1
            customer = rng.choice(customers)
            picked = rng.sample(variants, min(len(variants), rng.choice((1, 1, 2, 2, 3, 4))))
            quantities = [rng.choice((1, 1, 1, 1, 2, 2, 3)) for _ in picked]
            method_id, method_name, shipping_price = rng.choice(methods)
            subtotal = sum((v["price"] * q for v, q in zip(picked, quantities, strict=True)), ZERO)
            use_discount = rng.random() < 0.25
            off = discount["rule"].amount_off(subtotal) if use_discount else ZERO
            totals = compute_totals([(v["price"], q) for v, q in zip(picked, quantities, strict=True)],
                                    shipping_price, off, rate)
            discounted += use_discount
            # A cancelled order gave its use of the code back, as checkout's cancel does.
            uses += use_discount and status != OrderStatus.CANCELLED
            low, high = STATUS_AGE_DAYS[status]
            placed = self._ago(rng, low, high)
            changed = placed if status == OrderStatus.PENDING else min(
                placed + timedelta(hours=rng.randint(1, 72)), self.anchor - timedelta(seconds=1))
            city, country, postal = rng.choice(PLACES)
            number = _unique_drawn(rng, taken_numbers,
                                   lambda: "IW-" + "".join(rng.choices(ORDER_NUMBER_ALPHABET, k=8)))
            token = _unique_drawn(rng, taken_tokens, lambda: f"seed-{rng.getrandbits(160):040x}")
            orders.append({
                "number": number, "checkout_token": token, "user_id": customer.id,
                "status": status, "full_name": customer.full_name,
                "address_line1": f"{rng.randint(1, 250)} {rng.choice(STREETS)}",
                "address_line2": f"Flat {rng.randint(1, 40)}" if rng.random() < 0.2 else "",
                "city": city, "postal_code": _postal_code(rng, postal), "country": country,
                "shipping_method_id": method_id, "shipping_method_name": method_name,
                "discount_id": discount["id"] if use_discount else None,
                "discount_code": discount["code"] if use_discount else None,
                "subtotal": totals.subtotal, "discount_amount": totals.discount,
                "shipping_price": totals.shipping, "tax": totals.tax, "total": totals.total,
                "created_at": placed, "updated_at": changed,
            })
            lines.append([{"variant_id": v["id"], "product_id": v["product_id"],
                           "product_name": v["product_name"], "variant_label": v["label"],
                           "sku": v["sku"], "unit_price": v["price"], "quantity": q}
                          for v, q in zip(picked, quantities, strict=True)])
        order_ids = {number: order_id for order_id, number in self._insert(
            Order, orders, "id", "number")}
        self._insert(OrderItem, [{"order_id": order_ids[order["number"]], **line}
                                    for order, order_lines in zip(orders, lines, strict=True)
                                    for line in order_lines])
        # Orders past "pending" (but cancelled) were paid by hand: the ledger says so, at the
        # moment they moved on, so the dashboard's revenue (payments) has its history.
        from blog.payments.models import Payment, PaymentStatus

        currency = str(current_app.config["SHOP_CURRENCY"])
        self._insert(Payment, [
            {"order_id": order_ids[order["number"]], "provider": "manual",
             "reference": f"manual-{order['number']}", "amount": order["total"],
             "currency": currency, "refunded": ZERO, "status": PaymentStatus.SUCCEEDED,
             "paid_at": order["updated_at"], "created_at": order["updated_at"],
             "updated_at": order["updated_at"]}
            for order in orders if order["status"] in PAID_STATUSES])
        if uses:
            # History: the code's use count matches the orders not cancelled that used it.
            discounts = core_table(Discount)
            session.execute(discounts.update().where(discounts.c.id == discount["id"])
                            .values(times_used=uses))
        self.counts.update(orders=len(orders), discounted_orders=discounted, **status_counts)
        self.progress(len(orders))


#: The statuses an order only reaches once paid.
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def _unique_drawn(rng: random.Random, taken: set[str], draw: Callable[[], str]) -> str:
    """A value from ``draw()`` not in ``taken`` (drawing again on a clash), then taken."""
    value = draw()
    while value in taken:
        value = draw()
    taken.add(value)
    return value


def _postal_code(rng: random.Random, template: str) -> str:
    return "".join(str(rng.randrange(10)) if char == "#" else char for char in template)


ABOUT_PAGE = """We are a small collective of writers and printmakers. We publish essays and notes
here, and sell the prints and zines we make in the shop.

Everything on this site is written and made by us. If you like what you read, register
to comment and follow the writers you enjoy.
"""

CONTACT_PAGE = """Write to us at hello@example.com. We answer within a few days.

For orders, please give your order number.
"""
