"""Test harness.

The schema is built once per test session by running the migrations (never ``create_all``)
on ``TEST_DATABASE_URL`` (default: a temporary SQLite file). Each test then runs inside one
outer transaction that is rolled back at the end; the application's sessions join it through
savepoints, so a service's ``commit()`` releases a savepoint and nothing survives the test.

Tests that need real commits seen by other connections (threads, gunicorn workers) use the
``committed_app`` fixture instead, which cleans the tables afterwards.

The tests mirror the code: a folder per domain (accounts, posts, shop, admin) with its own
``conftest.py``. This one holds what more than one domain uses; the tests of the modules at the
top of ``blog/`` (config, database, security, cli, seed ...) sit next to it.
"""

from __future__ import annotations

import atexit
import html
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy import create_engine, select, text

from blog import create_app
from blog.accounts import services as accounts
from blog.accounts.models import ADMIN, User
from blog.config import normalize_database_url
from blog.database import StatementCounter, count_statements
from blog.extensions import db

# Property tests check behaviour, not speed (timing targets live in bench/): Hypothesis's
# per-example deadline would fail them on a busy CI machine.
settings.register_profile("inkwell", deadline=None)
settings.load_profile("inkwell")

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
PASSWORD = "correct horse battery"
#: Files of apps made without a test's own folder (mail, job queue), removed at exit.
_SCRATCH = tempfile.mkdtemp(prefix="inkwell-tests-")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)

# The app's sessions join the test's outer transaction with savepoints, so a rollback inside
# the app (a failed service) undoes only its own work. Only matters when bound to a Connection.
db.session.session_factory.configure(join_transaction_mode="create_savepoint")


def make_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    """The settings every test app gets; CSRF stays on (tests post real tokens)."""
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "BCRYPT_ROUNDS": 4,
        "SESSION_COOKIE_SECURE": False,
        "WTF_CSRF_ENABLED": True,
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
        "SQLITE_BUSY_TIMEOUT_MS": 20000,
        # Jobs (mail delivery) run inline, where the commit enqueues them; the tests of the
        # worker itself start a real `flask worker` process.
        "JOBS_IMMEDIATE": True,
        # Never the repository's instance/ folder; the app fixtures give each test its own.
        "MAIL_OUTBOX_FOLDER": os.path.join(_SCRATCH, "outbox"),
        "JOBS_DATABASE": os.path.join(_SCRATCH, "jobs.sqlite3"),
        # Each app its own cache: every test rolls its database back, so a cache shared
        # between tests would show one test the settings another test stored.
        "CACHE_TYPE": "SimpleCache",
    }
    config.update(overrides)
    return config


def reset_postgres(url: str) -> None:
    """Empty the PostgreSQL test database: it is the test's, and is rebuilt by migrations."""
    engine = create_engine(normalize_database_url(url))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def dispose(app: Flask) -> None:
    """Close the app's pooled connections (PostgreSQL has a connection limit; SQLite files
    would otherwise be closed by the garbage collector, with a ResourceWarning)."""
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The migrated test database's URL."""
    if TEST_DATABASE_URL:
        url = TEST_DATABASE_URL
        reset_postgres(url)
    else:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "inkwell-test.sqlite3")
    app = create_app(make_config(url))
    with app.app_context():
        flask_migrate.upgrade()
    dispose(app)
    return url


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """An upload folder for tests that save images (point ``UPLOAD_FOLDER`` at it in
    ``config_overrides``); it does not exist until the first image is saved."""
    return tmp_path / "uploads"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module (or with ``@pytest.mark.parametrize``) to change settings."""
    return {}


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """The folder the test app writes its emails to as .eml files (no MAIL_SERVER)."""
    return tmp_path / "outbox"


@pytest.fixture
def app(database_url: str, config_overrides: dict[str, Any], outbox: Path) -> Iterator[Flask]:
    """An app whose every session runs inside one transaction, rolled back after the test."""
    app = create_app(make_config(database_url, MAIL_OUTBOX_FOLDER=str(outbox), **config_overrides))
    with app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        outer = connection.begin()
        engines[None] = connection  # type: ignore[index]
    yield app
    with app.app_context():
        db.session.remove()
        outer.rollback()
        connection.close()
        engines[None] = engine  # type: ignore[index]
    dispose(app)


@pytest.fixture
def committed_app(database_url: str, config_overrides: dict[str, Any], outbox: Path) -> Iterator[Flask]:
    """An app on the real engine: data is committed, seen by other threads and processes.

    Every table but ``roles`` (seeded by migrations) is emptied afterwards.
    """
    app = create_app(make_config(database_url, MAIL_OUTBOX_FOLDER=str(outbox), **config_overrides))
    yield app
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                if table.name != "roles":
                    connection.execute(table.delete())
    dispose(app)


@contextmanager
def undone(app: Flask) -> Iterator[None]:
    """Roll back whatever the block writes (a savepoint on the test's connection), so a
    test can seed the same empty site twice."""
    with app.app_context():
        savepoint = db.engines[None].begin_nested()  # the app fixture's Connection
    try:
        yield
    finally:
        with app.app_context():
            db.session.remove()
            savepoint.rollback()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


CSRF_PATTERN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """A CSRF token for ``client``'s session, read from a page's form as a browser would."""
    for candidate in (path, "/", "/auth/login"):
        match = CSRF_PATTERN.search(client.get(candidate).get_data(as_text=True))
        if match:
            return match.group(1)
    raise AssertionError(f"no CSRF token on {path}, / or /auth/login")


class AuthActions:
    """Log a test client in and out through the real forms."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, username: str = "alice", password: str = PASSWORD, *,
              remember: bool = False, next_url: str | None = None) -> Any:
        data = {"csrf_token": csrf_token(self.client), "username": username, "password": password}
        if remember:
            data["remember"] = "y"
        path = "/auth/login" + (f"?next={next_url}" if next_url is not None else "")
        return self.client.post(path, data=data)

    def logout(self) -> Any:
        return self.client.post("/auth/logout", data={"csrf_token": csrf_token(self.client, "/")})


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Factory: ``make_user("bob", admin=True)`` or ``make_user("bob", roles=("editor",))``
    creates a member through the service (a reader, unless given roles)."""

    def factory(username: str = "alice", email: str | None = None, password: str = PASSWORD,
                *, admin: bool = False, active: bool = True, roles: tuple[str, ...] = ()) -> User:
        with app.app_context():
            user = accounts.create_user(username, email or f"{username}@example.com", password,
                                        roles=tuple(roles) + ((ADMIN,) if admin else ()))
            if not active:
                accounts.set_active(user, False)
            return user

    return factory


@pytest.fixture
def statements() -> Callable[[], Any]:
    """``with statements() as counted: client.get(...)`` then ``counted.count``."""
    return count_statements


def warm_site_cache(app: Flask) -> None:
    """Fill the cache of the site's settings and linked pages, as every request but the first
    after a change finds it (its two statements are tested in tests/pages)."""
    from blog.pages.services import current_site

    with app.app_context():
        current_site()


def page_statements(client: FlaskClient, path: str) -> StatementCounter:
    """Fetch ``path`` and return what it ran, the site settings being cached; fails unless
    the page answers 200."""
    warm_site_cache(client.application)
    with count_statements() as counted:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return counted


def png(colour: str, size: tuple[int, int] = (40, 30)) -> bytes:
    """A real PNG file of one colour, for upload tests."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def text_of(response: Any) -> str:
    """A response's body as text, with HTML entities decoded."""
    return html.unescape(response.get_data(as_text=True))


# --- shop: used by the shop's tests, the admin's and the seed's ------------------------------


def create_product(name: str, variants: list[tuple[str, str, int]] | None = None, *,
                   category: str | None = None, active: bool = True, description: str = "") -> Any:
    """A product with ``variants`` of (label, price, stock), committed through a service
    transaction (inside an app context). Default: one unlabelled variant at 10.00, 5 in stock."""
    from decimal import Decimal

    from blog.database_session import transaction
    from blog.shop.models import Category, Product, Variant
    from blog.text import slugify

    with transaction() as session:
        product = Product(name=name, slug=slugify(name), description=description, active=active)
        if category:
            product.category = session.scalar(
                select(Category).where(Category.slug == slugify(category))
            ) or Category(name=category, slug=slugify(category))
        for index, (label, price, stock) in enumerate(variants or [("", "10.00", 5)]):
            product.variants.append(Variant(label=label, price=Decimal(price), stock=stock,
                                            sku=f"{slugify(name)}-{index}".upper()))
        session.add(product)
    return product


def create_shipping(name: str = "Post", price: str = "5.00", active: bool = True) -> Any:
    from decimal import Decimal

    from blog.database_session import transaction
    from blog.shop.models import ShippingMethod

    with transaction() as session:
        method = ShippingMethod(name=name, price=Decimal(price), active=active)
        session.add(method)
    return method


@pytest.fixture
def make_product(app: Flask) -> Callable[..., Any]:
    def factory(*args: Any, **kwargs: Any) -> Any:
        with app.app_context():
            return create_product(*args, **kwargs)
    return factory


@pytest.fixture
def make_shipping(app: Flask) -> Callable[..., Any]:
    def factory(*args: Any, **kwargs: Any) -> Any:
        with app.app_context():
            return create_shipping(*args, **kwargs)
    return factory


ADDRESS = {"full_name": "Ada Lovelace", "address_line1": "12 St James's Square",
           "address_line2": "", "city": "London", "postal_code": "SW1Y 4JH", "country": "UK"}


class ShopActions:
    """Drive the shop through its real forms, as a browser would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def add(self, product: Any, quantity: Any = 1, variant: Any = None, **extra: Any) -> Any:
        data = {"csrf_token": csrf_token(self.client, f"/shop/products/{product.slug}"),
                "product_id": product.id, "quantity": quantity, **extra}
        if variant is not None:
            data["variant_id"] = variant.id if hasattr(variant, "id") else variant
        return self.client.post("/shop/cart/add", data=data)

    def update(self, product: Any, quantity: Any, variant: Any = None) -> Any:
        data = {"csrf_token": csrf_token(self.client, "/shop/cart"), "product_id": product.id,
                "quantity": quantity}
        if variant is not None:
            data["variant_id"] = variant.id
        return self.client.post("/shop/cart/update", data=data)

    def remove(self, product: Any, variant: Any = None) -> Any:
        data = {"csrf_token": csrf_token(self.client, "/shop/cart"), "product_id": product.id}
        if variant is not None:
            data["variant_id"] = variant.id
        return self.client.post("/shop/cart/remove", data=data)

    def checkout_token(self) -> str:
        page = self.client.get("/shop/checkout").get_data(as_text=True)
        match = re.search(r'name="checkout_token" type="hidden" value="([^"]+)"', page)
        assert match, "no checkout token on the checkout page"
        return match.group(1)

    def checkout(self, shipping: Any, token: str | None = None, **fields: Any) -> Any:
        data = {"csrf_token": csrf_token(self.client, "/shop/cart"),
                "checkout_token": token or self.checkout_token(),
                "shipping_method": shipping.id if hasattr(shipping, "id") else shipping,
                "discount_code": "", **ADDRESS, **fields}
        return self.client.post("/shop/checkout", data=data)


@pytest.fixture
def shop(client: FlaskClient) -> ShopActions:
    return ShopActions(client)


@pytest.fixture
def placed_order(app: Flask, auth: AuthActions, shop: ShopActions, make_user: Callable[..., User],
                 make_product: Callable[..., Any], make_shipping: Callable[..., Any]) -> dict[str, Any]:
    """An order placed through the checkout: alice, still logged in, bought 2 Mugs at 8.00 (5 in
    stock, 3 left) sent by Post at 5.00, 21.00 in all; it is pending.

    Keys: ``order`` (with its items), its ``number``, the ``mug``, its ``variant_id``, ``post``.
    """
    from sqlalchemy.orm import selectinload

    from blog.shop.models import Order

    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    post = make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 2)
    shop.checkout(post)
    with app.app_context():
        order = db.session.scalars(select(Order).options(selectinload(Order.items))).one()
    return {"order": order, "number": order.number, "mug": mug, "variant_id": mug.variants[0].id,
            "post": post}
