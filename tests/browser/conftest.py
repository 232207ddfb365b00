"""Real-browser tests: Debian's Chromium driven by Playwright against a real server.

The site runs in a thread (werkzeug's server on 127.0.0.1, a free port) on its own committed
SQLite file, filled by the demo seeder plus a post made to stress a page: a long code block, a
wide table and a long link. It is always SQLite, whatever ``TEST_DATABASE_URL`` says: these tests
look at pages, not at the database, so ``make test`` runs them in its SQLite pass only.

Chromium is never downloaded by a test tool: the tests use ``/usr/bin/chromium`` (or
``CHROMIUM``) and are skipped, saying why, only when it is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import insert, select, update
from werkzeug.serving import BaseWSGIServer, make_server

from blog import create_app
from blog.accounts.models import Role, User, user_roles
from blog.extensions import db
from tests.browser.axe import ensure_axe
from tests.conftest import dispose, make_config

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-dev-shm-usage"]
WIDTHS = (320, 390, 1280)
DEMO_PASSWORD = "inkwell-demo"

LONG_CODE = "\n".join(
    f"    result_{i} = compute_something_rather_long(argument_one={i}, argument_two='{'x' * 40}')"
    for i in range(12)
)
WIDE_TABLE = (
    "| " + " | ".join(f"Column heading {i}" for i in range(12)) + " |\n"
    + "|" + "---|" * 12 + "\n"
    + "| " + " | ".join(f"value-{i}-{'w' * 12}" for i in range(12)) + " |\n"
)
LONG_LINK = "https://example.com/" + "a-very-long-path-segment-without-any-break-" * 6 + "end"
STRESS_BODY = (
    "A post with the things that push a page sideways on a phone.\n\n"
    f"A long code block:\n\n{LONG_CODE}\n\n"
    f"A wide table:\n\n{WIDE_TABLE}\n"
    f"And a long link: [{LONG_LINK}]({LONG_LINK})\n"
)

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test (``-m "not browser"`` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class Site:
    """The served site and what the tests need to find their way around it."""

    url: str
    app: Flask
    post_slug: str = ""
    product_slug: str = ""
    product_id: int = 0
    order_number: str = ""
    member_order_number: str = ""
    message_id: int = 0
    reset_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def fill_site(app: Flask, site: Site) -> None:
    """Demo data plus the stress post, committed for the server thread to see."""
    from blog.accounts import tokens
    from blog.images import save_image
    from blog.mail.models import EmailMessage
    from blog.posts import media
    from blog.posts import services as posts
    from blog.seed import SeedSizes, seed_site
    from blog.shop.models import Order, Product
    from tests.conftest import png

    with app.app_context():
        flask_migrate.upgrade()
        seed_site(SeedSizes(users=6, posts=8, products=6, orders=8), seed=7)
        reader = db.session.scalars(select(User).where(User.username == "reader")).one()
        # The demo reader is a plain reader; here the member also writes, so the browser sees
        # the writing pages too (permissions are tested elsewhere).
        author_role = db.session.scalars(select(Role).where(Role.name == "author")).one()
        db.session.execute(insert(user_roles).values(user_id=reader.id, role_id=author_role.id))
        db.session.commit()
        admin = db.session.scalars(select(User).where(User.username == "admin")).one()
        # A picture in the reader's library (with a long name, for the layout), shown in the
        # stress post, which also gets a cover: lists, the post and the library show images.
        picture = media.upload(reader, io.BytesIO(png("teal", (1200, 800))),
                               "a-very-long-file-name-from-a-camera-IMG_20261205_073012_HDR_edited_final.png")
        cover = save_image(io.BytesIO(png("navy", (1600, 900))))
        post = posts.create_post(reader, "Wide things on small screens",
                                 STRESS_BODY + "\n\n" + media.markdown_for(picture) + "\n",
                                 "layout, code", True, cover=cover)
        posts.add_comment(post, reader, "A comment from the author, which they may delete.")
        posts.add_comment(post, admin, "A comment from the admin.")
        site.post_slug = post.slug
        product = db.session.scalars(select(Product).where(Product.active).order_by(Product.id)).first()
        assert product is not None
        site.product_slug, site.product_id = product.slug, product.id
        site.order_number = db.session.scalars(select(Order.number).order_by(Order.id)).first() or ""
        # The demo member gets a pending order of their own (the seed's go to anybody), so
        # their order page offers a cancel button.
        order = db.session.scalars(select(Order).where(Order.status == "pending").order_by(Order.id)).first()
        assert order is not None
        db.session.execute(update(Order).where(Order.id == order.id).values(user_id=reader.id))
        db.session.commit()
        site.member_order_number = order.number
        # The admin's comment told the reader by email: a message for the outbox pages.
        site.message_id = db.session.scalars(select(EmailMessage.id).order_by(EmailMessage.id)).first() or 0
        assert site.message_id
        site.reset_token = tokens.make(tokens.RESET, reader.id, tokens.fingerprint(reader.password_hash))


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The site served by a real HTTP server in a thread."""
    folder = tmp_path_factory.mktemp("browser-site")
    app = create_app(make_config(
        "sqlite:///" + str(folder / "site.sqlite3"),
        TESTING=False, UPLOAD_FOLDER=str(folder / "uploads"),
        # The browser logs in as three people from one address; throttling is tested elsewhere.
        RATELIMIT_ENABLED=False,
    ))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    site = Site(url=f"http://127.0.0.1:{server.server_port}", app=app)
    fill_site(app, site)
    thread = threading.Thread(target=server.serve_forever, name="browser-site", daemon=True)
    thread.start()
    yield site
    server.shutdown()
    thread.join(10)
    server.server_close()
    dispose(app)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; the tests are skipped when it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM) to run "
                    "the browser tests")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    return ensure_axe()


@pytest.fixture(scope="session")
def logins(browser: Any, site: Site) -> dict[str, Any]:
    """Storage states (cookies) of a visitor, the demo member and the demo admin, each logged in
    through the real form once."""
    states: dict[str, Any] = {"visitor": {"cookies": [], "origins": []}}
    for role, username in (("member", "reader"), ("admin", "admin")):
        context = browser.new_context()
        page = context.new_page()
        page.goto(site.url + "/auth/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", DEMO_PASSWORD)
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "/auth/login" not in page.url, f"{username} could not log in"
        states[role] = context.storage_state()
        context.close()
    return states


class PageWatch:
    """A page in a fresh context (CSP bypassed, for axe) that records console errors and
    failed requests."""

    def __init__(self, browser: Any, state: Any, width: int, axe_script: Path) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 800},
                                           storage_state=state, bypass_csp=True)
        self.page = self.context.new_page()
        self.axe_script = axe_script
        self.problems: list[str] = []
        self.page.on("console", lambda message: message.type == "error"
                     and self.problems.append(f"console: {message.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(
            f"request failed: {request.url} {request.failure}"))
        self.page.on("response", lambda response: response.status >= 400 and self.problems.append(
            f"HTTP {response.status}: {response.url}"))

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page."""
        self.page.add_script_tag(path=str(self.axe_script))
        result = self.page.evaluate("""async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""")
        return [v for v in result if v["impact"] in ("serious", "critical")]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, logins: dict[str, Any], axe_script: Path) -> Iterator[Any]:
    """``open_page(role, width)``: a :class:`PageWatch` for that person at that width."""
    watches: list[PageWatch] = []

    def factory(role: str, width: int) -> PageWatch:
        watch = PageWatch(browser, logins[role], width, axe_script)
        watches.append(watch)
        return watch

    yield factory
    for watch in watches:
        watch.close()
