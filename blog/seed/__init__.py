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
HTML (the tests check it against :func:`blog.rendering.render_markdown`).

**Never clashes.** On a site that already has data (only with ``force``), existing tags,
categories and shipping methods are reused by name, and any generated username, email,
slug, SKU, discount code or order number that is taken gets a numeric suffix, so the
database's unique constraints are never hit.

**Where things are.** This module is the service and its public names; the rest of the
package: :mod:`~blog.seed.results` (sizes, result, error, demo logins),
:mod:`~blog.seed.builder` (the seeder, part by part), :mod:`~blog.seed.bodies` (post bodies
from pre-rendered blocks), :mod:`~blog.seed.bulk` (chunked bulk inserts) and
:mod:`~blog.seed.words` (the word lists and tables everything is drawn from).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time

from flask import current_app
from sqlalchemy import exists, select

from blog.accounts.models import ADMIN, AUTHOR, EDITOR, User, lookup_key
from blog.database import log as sql_log
from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.pages.services import forget_site
from blog.search.maintenance import optimize_indexes
from blog.security import check_password, hash_password
from blog.seed.builder import Seeder
from blog.seed.bulk import CHUNK_SIZE, core_table
from blog.seed.results import (
    DEMO_ADMIN,
    DEMO_MEMBER,
    DEMO_PASSWORD,
    DISCOUNT_CODE,
    PROGRESS_THRESHOLD,
    REFUSAL,
    SeedError,
    SeedResult,
    SeedSizes,
    login_lines,
)
from blog.shop.models import Category, Discount, Product, ShippingMethod

__all__ = [
    "CHUNK_SIZE",
    "DEMO_ADMIN",
    "DEMO_MEMBER",
    "DEMO_PASSWORD",
    "DISCOUNT_CODE",
    "PROGRESS_THRESHOLD",
    "REFUSAL",
    "SeedError",
    "SeedResult",
    "SeedSizes",
    "demo_login_works",
    "demo_writers",
    "login_lines",
    "seed_site",
    "site_has_data",
    "slow_statement_log_quieted",
]


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
    tables = [core_table(model) for model in (User, Product, Category, ShippingMethod, Discount)]
    return any(db.session.execute(select(*(exists().select_from(t) for t in tables))).one())


def demo_login_works(username: str, password: str) -> bool:
    """Whether ``username`` exists, is active and still has ``password`` (bcrypt-checked)."""
    user = db.session.scalar(select(User).where(User.username_key == lookup_key(username)))
    return user is not None and user.active and check_password(user.password_hash, password)


def demo_writers() -> tuple[str | None, str | None]:
    """The usernames a seeding run printed for writing: the first active editor, and the
    first active member who is an author and nothing more (None when there is none). Whether
    the demo password still opens them is :func:`demo_login_works`'s question."""
    def first(holds: str, *lacks: str) -> str | None:
        return db.session.scalar(
            select(User.username).where(User.active.is_(True), User.roles.any(name=holds),
                                        *(~User.roles.any(name=role) for role in lacks))
            .order_by(User.id).limit(1))

    return first(EDITOR, ADMIN), first(AUTHOR, EDITOR, ADMIN)


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
        seeder = Seeder(session, sizes, seed, anchor, progress)
        seeder.members_and_carts(admin_hash, member_hash)
        seeder.follows()
        seeder.blog()
        seeder.pages()
        variants, methods, discount = seeder.shop()
        seeder.orders(variants, methods, discount)
    forget_site()  # the new pages show in the navigation at once
    # Thousands of posts written at once leave the full-text index in many segments, which
    # slows every search that tests posts one by one; the nightly job would merge them too.
    optimize_indexes()
    return SeedResult(seed=seed, admin_username=seeder.members[0].username,
                      member_username=seeder.members[1].username,
                      editor_username=seeder.editor.username if seeder.editor else None,
                      author_username=seeder.author.username if seeder.author else None,
                      admin_password=admin_password, member_password=member_password,
                      counts=seeder.counts, discount_code=discount["code"])
