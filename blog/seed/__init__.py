"""Demo data for a new site: ``flask seed``.

What gets made, and the rules it follows:

- **Members**: the demo admin (``admin``, with the ``admin`` role), a demo member
  (``reader``) and generated members, a few of them deactivated, each with a cart (as
  registration would make). Every demo member shares one password; the admin's may differ.
  bcrypt is slow by design, so each password is hashed once and the hash reused.
- **The blog**: posts in Markdown (a few drafts), tags, comments, likes and follows.
- **The shop**: categories, products with one or several variants (sizes, paper formats),
  some sold out, some nearly; shipping methods; the discount code ``WELCOME10``; and past
  orders in every status, priced by :func:`blog.shop.pricing.compute_totals` exactly as
  checkout prices them, with lines that copy the product as it was sold.

**Reproducible.** Everything is drawn from :class:`random.Random` instances seeded from the
``seed`` argument, one stream per part of the site (members, follows, posts, shop, orders),
so the same seed on an empty site gives the same rows, and the catalogue does not change
when only the number of posts does. Dates count back from an *anchor*, by default the start
of the current day (UTC), so the demo always looks recent and the orders fall in the admin
dashboard's last-30-days window: the same seed on the same day gives identical rows, on
another day the same rows shifted by whole days. Only the password hashes differ between
runs, since bcrypt salts must be random.

**Fast.** Rows are written with Core ``insert()`` statements, many rows each (executemany),
in chunks, inside one service transaction: all or nothing. Ids come back through
``RETURNING`` and are matched by a unique natural key (username, slug, SKU, order number).
Rendering Markdown is the slow part (about a millisecond per post), so post bodies are
assembled from a pool of Markdown blocks that are rendered once each: blocks separated by
blank lines render independently, so the HTML of a body is the concatenation of its blocks'
HTML (the tests check it against :func:`blog.posts.rendering.render_markdown`).

**Never clashes.** On a site that already has data (only with ``force``), existing tags,
categories and shipping methods are reused by name, and any generated username, email,
slug, SKU, discount code or order number that is taken gets a numeric suffix, so the
database's unique constraints are never hit.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Table, exists, insert, select
from sqlalchemy.orm import Session

from blog.accounts.models import ADMIN, Role, User, lookup_key, user_roles
from blog.database import log as sql_log
from blog.database import transaction, utcnow
from blog.extensions import db
from blog.posts.models import Comment, Post, Tag, follows, likes, post_tags
from blog.posts.rendering import excerpt_of, render_markdown
from blog.security import check_password, hash_password
from blog.seed.words import (
    CATALOGUE,
    CODE_SNIPPETS,
    COMMENT_SENTENCES,
    DESCRIPTIONS,
    FIRST_NAMES,
    HEADINGS,
    LAST_NAMES,
    LINKS,
    LIST_ITEMS,
    PLACES,
    PRODUCT_ADJECTIVES,
    SENTENCES,
    SHIPPING_METHODS,
    STATUS_AGE_DAYS,
    STATUS_WEIGHTS,
    STREETS,
    TABLES,
    TAG_NAMES,
    TITLE_OPENERS,
    TITLE_TAILS,
    TITLE_TOPICS,
)
from blog.shop.checkout import _NUMBER_ALPHABET
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

#: The demo logins; the summary prints them, and ``make run`` shows them at every start.
DEMO_ADMIN = "admin"
DEMO_MEMBER = "reader"
DEMO_PASSWORD = "inkwell-demo"
DISCOUNT_CODE = "WELCOME10"

#: Rows handed to one ``execute()``: enough that statements are few, few enough that a
#: chunk of posts (about 12 MB of text) keeps memory flat however many posts are made.
CHUNK_SIZE = 5000

#: The command shows a progress bar when members + posts + products + orders exceed this.
PROGRESS_THRESHOLD = 5000

# Core tables: inserting into the Table (not the mapped class) skips the ORM's bulk path;
# a list of rows becomes the driver's executemany, or with RETURNING, multi-row VALUES
# statements of 1,000 rows ("insertmanyvalues").
_users: Table = User.__table__  # type: ignore[assignment]
_carts: Table = Cart.__table__  # type: ignore[assignment]
_posts: Table = Post.__table__  # type: ignore[assignment]
_tags: Table = Tag.__table__  # type: ignore[assignment]
_comments: Table = Comment.__table__  # type: ignore[assignment]
_categories: Table = Category.__table__  # type: ignore[assignment]
_products: Table = Product.__table__  # type: ignore[assignment]
_variants: Table = Variant.__table__  # type: ignore[assignment]
_shipping: Table = ShippingMethod.__table__  # type: ignore[assignment]
_discounts: Table = Discount.__table__  # type: ignore[assignment]
_orders: Table = Order.__table__  # type: ignore[assignment]
_order_items: Table = OrderItem.__table__  # type: ignore[assignment]


# --- sizes and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSizes:
    """How much to make. ``users`` counts the demo admin and the demo member too."""

    users: int = 12
    posts: int = 40
    products: int = 16
    orders: int = 30

    def check(self) -> None:
        """Raise :class:`SeedError` for sizes that cannot be made."""
        if self.users < 2:
            raise SeedError("--users must be at least 2 (the demo admin and the demo member).")
        if min(self.posts, self.products, self.orders) < 0:
            raise SeedError("Sizes cannot be negative.")
        if self.orders and not self.products:
            raise SeedError("Orders need products: give --products 1 or more, or --orders 0.")

    @property
    def items(self) -> int:
        """The units a progress bar counts: members, posts, products and orders."""
        return self.users + self.posts + self.products + self.orders


@dataclass
class SeedResult:
    """What :func:`seed_site` made, and how to log in."""

    seed: int
    admin_username: str
    member_username: str
    admin_password: str
    member_password: str
    counts: dict[str, int] = field(default_factory=dict)
    discount_code: str = DISCOUNT_CODE

    def summary(self, elapsed: float | None = None) -> list[str]:
        """The report's lines: what was made (in ``elapsed`` seconds), then the logins."""
        def n(key: str, noun: str, plural: str | None = None) -> str:
            count = self.counts[key]
            return f"{count:,} {noun if count == 1 else plural or noun + 's'}"

        took = f" in {elapsed:.1f} s" if elapsed is not None else ""
        statuses = ", ".join(f"{self.counts[status]} {status}" for status in OrderStatus.ALL)
        return [
            f"Added with --seed {self.seed}{took}:",
            (f"  {n('users', 'member')} ({n('admins', 'admin')}, {self.counts['inactive']} "
            f"deactivated), {n('follows', 'follow')}"),
            (f"  {n('posts', 'post')} ({n('drafts', 'draft')}), {n('tags', 'tag')}, "
            f"{n('comments', 'comment')}, {n('likes', 'like')}"),
            (f"  {n('categories', 'category', 'categories')}, {n('products', 'product')} with "
            f"{n('variants', 'variant')}, {n('shipping_methods', 'shipping method')}, "
            f"discount code {self.discount_code}"),
            f"  {n('orders', 'order')} ({statuses})",
            *login_lines(self.admin_username, self.admin_password,
                         self.member_username, self.member_password),
        ]


class SeedError(Exception):
    """The site cannot be seeded as asked; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


REFUSAL = "The site already has data; use --force to add demo data anyway."


def login_lines(admin: str | None, admin_password: str,
                member: str | None, member_password: str) -> list[str]:
    """How to log in as the demo admin and the demo member (either may be None)."""
    lines = ["Log in at /auth/login as:"] if admin or member else []
    if admin:
        lines.append(f"  admin:  {admin} / {admin_password}")
    if member:
        lines.append(f"  member: {member} / {member_password}  (every demo member has this password)")
    return lines


@contextmanager
def slow_statement_log_quieted() -> Iterator[None]:
    """Mute the slow-statement warnings while the block runs. A bulk statement of thousands
    of rows is slow by nature, and the warning would print its whole SQL (with a thousand
    rows of placeholders on PostgreSQL) for every chunk."""
    level = sql_log.level
    sql_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sql_log.setLevel(level)


# --- what is already there -----------------------------------------------------------------


def site_has_data() -> bool:
    """Whether the site has members, products or shop settings (roles do not count: the
    first migration makes them). One statement."""
    tables = (_users, _products, _categories, _shipping, _discounts)
    return any(db.session.execute(select(*(exists().select_from(t) for t in tables))).one())


def demo_login_works(username: str, password: str) -> bool:
    """Whether ``username`` exists, is active and still has ``password`` (bcrypt-checked)."""
    user = db.session.scalar(select(User).where(User.username_key == lookup_key(username)))
    return user is not None and user.active and check_password(user.password_hash, password)


# --- Markdown bodies from pre-rendered blocks -----------------------------------------------


@dataclass
class _BodyPool:
    """Markdown blocks, each rendered once. A post body is a paragraph, then paragraphs
    with an occasional heading, list, quote, code block or table before them. Two non-
    paragraph blocks are never adjacent (two lists in a row would merge into one), so every
    block renders the same alone as in the body, and a body's HTML is its blocks' HTML."""

    paragraphs: list[tuple[str, str, str]]  # (markdown, html, plain text)
    extras: list[tuple[str, str, str]]
    _excerpts: dict[tuple[int, ...], str] = field(default_factory=dict)

    @classmethod
    def build(cls, rng: random.Random, paragraphs: int = 120) -> _BodyPool:
        def block(markdown: str) -> tuple[str, str, str]:
            html = render_markdown(markdown)
            return markdown, html, excerpt_of(html, length=10_000)

        return cls(
            paragraphs=[block(_paragraph(rng)) for _ in range(paragraphs)],
            extras=[block(markdown) for markdown in _extras(rng)],
        )

    def body(self, rng: random.Random) -> tuple[str, str, str]:
        """A post's (Markdown, HTML, excerpt)."""
        keys = [rng.randrange(len(self.paragraphs))]
        chosen = [self.paragraphs[keys[0]]]
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.45:
                extra = rng.randrange(len(self.extras))
                keys.append(-1 - extra)  # negative keys: extras
                chosen.append(self.extras[extra])
            paragraph = rng.randrange(len(self.paragraphs))
            keys.append(paragraph)
            chosen.append(self.paragraphs[paragraph])
        markdown = "\n".join(part[0] for part in chosen)
        html = "".join(part[1] for part in chosen)
        return markdown, html, self._excerpt(keys, chosen)

    def _excerpt(self, keys: list[int], chosen: list[tuple[str, str, str]]) -> str:
        # excerpt_of() takes ~60 µs; it depends only on the first 280 characters of text, so
        # it is computed once per distinct run of leading blocks that holds comfortably more
        # text than that (the margin covers the spaces between blocks).
        text_length = 0
        for count, part in enumerate(chosen, 1):  # noqa: B007 (read after the loop)
            text_length += len(part[2]) + 1
            if text_length > 320:
                break
        key = tuple(keys[:count])
        excerpt = self._excerpts.get(key)
        if excerpt is None:
            excerpt = self._excerpts[key] = excerpt_of("".join(part[1] for part in chosen[:count]))
        return excerpt


def _paragraph(rng: random.Random) -> str:
    sentences = rng.sample(SENTENCES, rng.randint(3, 6))
    roll = rng.random()
    if roll < 0.25:  # some inline Markdown, so pages show rendered formatting
        words = sentences[0].split(" ")
        at = rng.randrange(len(words))
        words[at] = f"*{words[at]}*"
        sentences[0] = " ".join(words)
    elif roll < 0.4:
        label, url = rng.choice(LINKS)
        sentences.append(f"There is more at [{label}]({url}).")
    elif roll < 0.5:
        sentences[-1] = f"**{sentences[-1]}**"
    return " ".join(sentences) + "\n"


def _extras(rng: random.Random) -> list[str]:
    blocks = [f"## {heading}\n" for heading in HEADINGS]
    for _ in range(6):
        items = rng.sample(LIST_ITEMS, rng.randint(3, 5))
        blocks.append("".join(f"- {item}\n" for item in items))
        blocks.append("".join(f"{number}. {item}\n" for number, item in enumerate(items, 1)))
    blocks += [f"> {sentence}\n" for sentence in rng.sample(SENTENCES, 6)]
    blocks += [*CODE_SNIPPETS, *TABLES, "---\n"]
    return blocks


# --- the seeder ----------------------------------------------------------------------------


def _stream(seed: int, part: str) -> random.Random:
    """An independent, reproducible random stream for one part of the site. (A string seed
    is hashed with SHA-512 by ``random``, not with Python's per-process string hash.)"""
    return random.Random(f"inkwell-seed:{seed}:{part}")


def _chunks(rows: Sequence[Any], size: int = CHUNK_SIZE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


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


class _Seeder:
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

    def _insert(self, table: Table, rows: Sequence[dict[str, Any]], *returning: Any) -> list[Any]:
        """Insert ``rows`` in chunks, many rows per statement; return the ``returning``
        columns of every row (in no particular order)."""
        results: list[Any] = []
        for part in _chunks(rows):
            if returning:
                results.extend(self.session.execute(insert(table).returning(*returning), part).all())
            else:
                self.session.execute(insert(table), part)
        return results

    def _ago(self, rng: random.Random, low_days: float, high_days: float) -> datetime:
        """A moment between ``low_days`` and ``high_days`` before the anchor, to the second."""
        return self.anchor - timedelta(seconds=rng.randint(int(low_days * 86400) + 1,
                                                           int(high_days * 86400)))

    # members --------------------------------------------------------------------------

    def members_and_carts(self, admin_hash: str, member_hash: str) -> None:
        rng = _stream(self.seed, "members")
        session = self.session
        admin_role = session.scalar(select(Role.id).where(Role.name == ADMIN))
        if admin_role is None:  # the first migration makes it
            raise SeedError(f"There is no {ADMIN!r} role; run `flask db upgrade` first.")
        # "admin", else "admin2", "admin3" …: the first whose email is free too. Generated
        # names are lower-case, so a name is its own lookup key.
        usernames = _Claims(session.scalars(select(User.username_key)), separator="")
        emails = set(session.scalars(select(User.email_key)))

        people = [(DEMO_ADMIN, "Demo Admin", True), (DEMO_MEMBER, "Demo Reader", True)]
        for _ in range(self.sizes.users - 2):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            # About one member in twenty has been deactivated, for the admin's member list.
            people.append((f"{first}_{last}", f"{first.title()} {last.title()}", rng.random() >= 0.05))
        rows = []
        for index, (base, _full_name, active) in enumerate(people):
            username = usernames.claim(base, lambda name: f"{name}@example.com" not in emails)
            created = self._ago(rng, 760, 1100)
            rows.append({"username": username, "username_key": lookup_key(username),
                         "email": f"{username}@example.com",
                         "email_key": f"{lookup_key(username)}@example.com",
                         "password_hash": admin_hash if index == 0 else member_hash,
                         "active": active, "created_at": created, "updated_at": created})
        ids = {key: user_id for user_id, key in
                   self._insert(_users, rows, _users.c.id, _users.c.username_key)}
        self.members = [_Member(ids[row["username_key"]], row["username"], full_name,
                                row["active"], row["created_at"])
                        for row, (_, full_name, _) in zip(rows, people, strict=True)]

        session.execute(insert(user_roles), [{"user_id": self.members[0].id, "role_id": admin_role}])
        # Registration gives every member a cart; so does seeding.
        self._insert(_carts, [{"user_id": m.id, "created_at": m.created_at, "updated_at": m.created_at}
                              for m in self.members])
        self.counts.update(users=len(self.members), admins=1,
                           inactive=sum(not m.active for m in self.members))
        self.progress(len(self.members))

    def follows(self) -> None:
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
        rng = _stream(self.seed, "posts")
        session = self.session
        pool = _BodyPool.build(rng)

        # Tags are shared topics: reuse those that exist, create the rest.
        tag_ids = dict(session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(TAG_NAMES))).all())
        new_tags = [{"name": name} for name in TAG_NAMES if name not in tag_ids]
        tag_ids.update((name, tag_id) for tag_id, name in
                       self._insert(_tags, new_tags, _tags.c.id, _tags.c.name))
        tag_list = [tag_ids[name] for name in TAG_NAMES]
        self.counts["tags"] = len(new_tags)

        active = [m for m in self.members if m.active]
        # The admin and about half the others write; a few of them write most of the posts.
        writers = [self.members[0]] + [m for m in active[1:] if rng.random() < 0.5]
        weights = [rng.choice((1, 1, 2, 4, 8)) for _ in writers]
        cumulative = [sum(weights[:i + 1]) for i in range(len(weights))]

        slugs = _Claims(session.scalars(select(Post.slug)))

        counts = {"posts": 0, "drafts": 0, "comments": 0, "likes": 0}
        for start in range(0, self.sizes.posts, CHUNK_SIZE):
            size = min(CHUNK_SIZE, self.sizes.posts - start)
            posts = []
            for _ in range(size):
                title = (rng.choice(TITLE_OPENERS) + " " + rng.choice(TITLE_TOPICS)
                         + rng.choice(TITLE_TAILS))
                title = title[0].upper() + title[1:]
                body, body_html, excerpt = pool.body(rng)
                author = rng.choices(writers, cum_weights=cumulative)[0]
                published = rng.random() >= 0.05
                if published:
                    published_at: datetime | None = self._ago(rng, 1 / 24, 730)
                    created = published_at - timedelta(minutes=rng.randint(5, 600))
                else:
                    published_at, created = None, self._ago(rng, 1 / 24, 60)
                posts.append({"title": title, "slug": slugs.claim(slugify(title)), "body": body,
                              "body_html": body_html, "excerpt": excerpt, "published": published,
                              "published_at": published_at, "author_id": author.id,
                              "created_at": created, "updated_at": created})
            ids = {slug: post_id for post_id, slug in
                       self._insert(_posts, posts, _posts.c.id, _posts.c.slug)}

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
            self._insert(_comments, comment_rows)
            self._insert(likes, like_rows)
            counts["posts"] += len(posts)
            counts["comments"] += len(comment_rows)
            counts["likes"] += len(like_rows)
            self.progress(len(posts))
        self.counts.update(counts)

    # the shop -------------------------------------------------------------------------

    def shop(self) -> tuple[list[dict[str, Any]], list[tuple[int, str, Decimal]], dict[str, Any]]:
        """Categories, products and variants, shipping methods and the discount code.
        Returns the variants (with their product), the shipping methods and the discount."""
        rng = _stream(self.seed, "shop")
        session = self.session

        category_ids = dict(session.execute(select(Category.slug, Category.id)).all())
        new_categories = [{"name": name, "slug": slugify(name)} for name, *_ in CATALOGUE
                          if slugify(name) not in category_ids]
        category_ids.update((slug, category_id) for category_id, slug in self._insert(
            _categories, new_categories, _categories.c.id, _categories.c.slug))
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
            _products, products, _products.c.id, _products.c.slug)}
        names = {product["slug"]: product["name"] for product in products}
        variants = [{"product_id": product_ids[slug], **spec} for slug, spec in variant_specs]
        variant_ids = {sku: variant_id for variant_id, sku in self._insert(
            _variants, variants, _variants.c.id, _variants.c.sku)}
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
            _shipping, new_methods, _shipping.c.id, _shipping.c.name, _shipping.c.price))
        methods = [(shipping[name][0], name, shipping[name][1]) for name, _ in SHIPPING_METHODS]
        self.counts["shipping_methods"] = len(new_methods)

        code = _Claims(session.scalars(select(Discount.code))).claim(DISCOUNT_CODE)
        created = self._ago(rng, 90, 120)
        [(discount_id,)] = self._insert(_discounts, [{
            "kind": "percentage", "code": code, "active": True, "starts_at": None,
            "ends_at": None, "usage_limit": None, "times_used": 0, "min_subtotal": None,
            "percent": Decimal("10.00"), "amount": None, "created_at": created, "updated_at": created,
        }], _discounts.c.id)
        # Worked out by the discount class itself, so the rule lives in one place.
        discount = {"id": discount_id, "code": code,
                    "rule": PercentageDiscount(code=code, percent=Decimal("10.00"))}
        return sold, methods, discount

    def orders(self, variants: list[dict[str, Any]], methods: list[tuple[int, str, Decimal]],
               discount: dict[str, Any]) -> None:
        rng = _stream(self.seed, "orders")
        session = self.session
        rate = parse_rate(current_app.config["SHOP_TAX_RATE"])
        customers = [m for m in self.members[1:] if m.active] or self.members[:1]
        taken_numbers = set(session.scalars(select(Order.number)))
        taken_tokens = set(session.scalars(select(Order.checkout_token)))
        status_counts = dict.fromkeys(OrderStatus.ALL, 0)
        discounted = 0
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
            low, high = STATUS_AGE_DAYS[status]
            placed = self._ago(rng, low, high)
            changed = placed if status == OrderStatus.PENDING else min(
                placed + timedelta(hours=rng.randint(1, 72)), self.anchor - timedelta(seconds=1))
            city, country, postal = rng.choice(PLACES)
            number = _unique_drawn(rng, taken_numbers,
                                   lambda: "IW-" + "".join(rng.choices(_NUMBER_ALPHABET, k=8)))
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
            _orders, orders, _orders.c.id, _orders.c.number)}
        self._insert(_order_items, [{"order_id": order_ids[order["number"]], **line}
                                    for order, order_lines in zip(orders, lines, strict=True)
                                    for line in order_lines])
        if discounted:
            # History: the code's use count matches the orders that used it.
            session.execute(_discounts.update().where(_discounts.c.id == discount["id"])
                            .values(times_used=discounted))
        self.counts.update(orders=len(orders), discounted_orders=discounted, **status_counts)
        self.progress(len(orders))


def _unique_drawn(rng: random.Random, taken: set[str], draw: Callable[[], str]) -> str:
    """A value from ``draw()`` not in ``taken`` (drawing again on a clash), then taken."""
    value = draw()
    while value in taken:
        value = draw()
    taken.add(value)
    return value


def _postal_code(rng: random.Random, template: str) -> str:
    return "".join(str(rng.randrange(10)) if char == "#" else char for char in template)


# --- the service ---------------------------------------------------------------------------


def seed_site(sizes: SeedSizes, *, seed: int, admin_password: str = DEMO_PASSWORD,
              member_password: str = DEMO_PASSWORD, force: bool = False,
              anchor: datetime | None = None,
              progress: Callable[[int], None] | None = None) -> SeedResult:
    """Fill the site with demo data, all in one transaction; see the module's docstring.

    ``anchor`` is the moment dates count back from (default: the start of today, UTC).
    ``progress`` is called with the number of members, posts, products or orders just
    written (they add up to ``sizes.items``). Raises :class:`SeedError`, writing nothing,
    when the site already has data and ``force`` is false, or the input is unusable.
    """
    sizes.check()
    minimum = int(current_app.config["PASSWORD_MIN_LENGTH"])
    for password in (admin_password, member_password):
        if len(password) < minimum:
            raise SeedError(f"Passwords must have at least {minimum} characters.")
    if anchor is None:
        anchor = datetime.combine(utcnow().date(), time(), tzinfo=UTC)
    if anchor.tzinfo is None:
        raise SeedError("The anchor must be timezone-aware.")

    # Hash before the write transaction (bcrypt is slow), and once per distinct password.
    admin_hash = hash_password(admin_password)
    member_hash = admin_hash if member_password == admin_password else hash_password(member_password)

    with transaction() as session:
        # Checked inside the transaction, which on SQLite holds the write lock already, so
        # two seeders cannot both find the site empty.
        if not force and site_has_data():
            raise SeedError(REFUSAL)
        seeder = _Seeder(session, sizes, seed, anchor, progress)
        seeder.members_and_carts(admin_hash, member_hash)
        seeder.follows()
        seeder.blog()
        variants, methods, discount = seeder.shop()
        seeder.orders(variants, methods, discount)
    return SeedResult(seed=seed, admin_username=seeder.members[0].username,
                      member_username=seeder.members[1].username,
                      admin_password=admin_password, member_password=member_password,
                      counts=seeder.counts, discount_code=discount["code"])
