"""Two app hosts behind nginx, on one PostgreSQL and one Redis (issue #15, item 6).

The topology of README's "Deployment" for a larger site, on this machine (tests/deploy/hosts.py)::

    browser ──► nginx ──(round robin)──► host A: gunicorn ──┬──► PostgreSQL (TEST_DATABASE_URL)
                                     └──► host B: gunicorn ──┴──► Redis (TEST_REDIS_URL)

The hosts share no files and no memory: only the database, Redis (rate limits, the cache, the
job queue) and the secret key that signs session cookies. Each test makes a change through one
host, talking to it directly, and looks for it through the other, so that nothing depends on
where nginx happens to send a request: a login, a cart, a checkout, a rate limit and the
invalidation of the visitors' cached home page. The last test goes through nginx, which spreads
one member's requests over both hosts.

The servers are started once for the module; each test's data is committed by
``committed_app`` (tables emptied after each test). Needs PostgreSQL, Redis and nginx (all
three in CI, .ci/run); skipped without them. When a test fails, what the servers wrote during
it is shown with its captured output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR, User, UserSession
from blog.extensions import db
from blog.posts import services as posts
from blog.shop.models import Order, Variant
from tests.conftest import ADDRESS, TEST_DATABASE_URL, TEST_REDIS_URL, create_product, create_shipping
from tests.deploy.hosts import (
    NGINX,
    Browser,
    Page,
    TwoHosts,
    hidden_fields,
    redis_answers,
    two_hosts_behind_nginx,
)

#: Login POSTs allowed per client address (LOGIN_RATE_LIMIT): an hour's window, so the
#: count cannot start again in the middle of a test.
LOGIN_LIMIT = 4


def _why_skipped() -> str | None:
    if not TEST_DATABASE_URL or make_url(TEST_DATABASE_URL).get_backend_name() != "postgresql":
        return "two app hosts share one PostgreSQL: set TEST_DATABASE_URL to one (.ci/run does)"
    if not TEST_REDIS_URL:
        return "two app hosts share one Redis: set TEST_REDIS_URL (.ci/run does)"
    if NGINX is None:
        return "nginx is not installed (apt-get install nginx; .ci/run installs it)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_skipped() is not None, reason=_why_skipped() or "")]


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoHosts]:
    """Host A, host B and nginx in front of them, on the test database and the test Redis."""
    assert TEST_REDIS_URL is not None
    if not redis_answers(TEST_REDIS_URL):
        pytest.skip(f"no Redis answers at TEST_REDIS_URL ({TEST_REDIS_URL})")
    with two_hosts_behind_nginx(
        tmp_path_factory.mktemp("two-hosts"),
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        settings={"LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per hour"},
    ) as deployment:
        yield deployment


@pytest.fixture(autouse=True)
def server_logs(site: TwoHosts) -> Iterator[None]:
    """Print what the servers wrote during the test: pytest shows it when the test fails."""
    marks = site.log_marks()
    yield
    print(site.logs_since(marks))


def expect(page: Page, status: int) -> Page:
    assert page.status == status, f"expected {status}:\n{page}"
    return page


def create_member(app: Flask, username: str, *roles: str) -> User:
    with app.app_context():
        return accounts.create_user(username, f"{username}@example.com", "correct horse battery", roles=roles)


def create_mug(app: Flask, stock: int = 5) -> Any:
    """A product, "Mug", of one variant at 8.00."""
    with app.app_context():
        return create_product("Mug", [("", "8.00", stock)])


def add_to_cart(browser: Browser, base: str, product: Any, quantity: int) -> Page:
    """The product page's "Add to cart" form, read from and posted to ``base``."""
    token = browser.form(f"{base}/shop/products/{product.slug}")["csrf_token"]
    return browser.post(
        base + "/shop/cart/add", {"csrf_token": token, "product_id": product.id, "quantity": quantity}
    )


def mug_stock(app: Flask, mug: Any) -> int:
    with app.app_context():
        stock = db.session.scalar(select(Variant.stock).where(Variant.id == mug.variants[0].id))
        db.session.remove()
    assert stock is not None
    return stock


def test_both_hosts_share_the_database_and_redis(site: TwoHosts) -> None:
    for host in (site.a, site.b):
        state = json.loads(expect(Browser().get(host.base + "/healthz"), 200).text)
        assert (state["database"], state["redis"], state["jobs"]["storage"]) == ("ok", "ok", "redis"), state


def test_a_login_through_one_host_is_seen_through_the_other(site: TwoHosts, committed_app: Flask) -> None:
    create_member(committed_app, "ada")
    browser = Browser()
    expect(browser.login(site.a.base, "ada"), 302)

    # B accepts the session cookie A signed, and finds the login record A stored.
    expect(browser.get(site.b.base + "/auth/password"), 200)
    assert '<a href="/users/ada">ada</a>' in expect(browser.get(site.b.base + "/"), 200).text

    # Logging out through B ends the login on A, even for a copy of the cookie kept from before.
    kept = browser.copy()
    expect(browser.logout(site.b.base), 302)
    for someone in (browser, kept):
        assert expect(someone.get(site.a.base + "/auth/password"), 302).location == "/auth/login"


def test_a_cart_filled_through_one_host_is_seen_through_the_other(
    site: TwoHosts, committed_app: Flask
) -> None:
    mug = create_mug(committed_app)
    variant_id = mug.variants[0].id
    visitor = Browser()  # not logged in: the cart hangs on the signed session cookie
    assert expect(add_to_cart(visitor, site.a.base, mug, 2), 302).location == "/shop/cart"

    cart = expect(visitor.get(site.b.base + "/shop/cart"), 200)
    assert "Mug" in cart.text
    assert f'id="qty-{variant_id}" name="quantity" value="2"' in cart.text, cart

    # And back: changed through B, seen on A.
    token = hidden_fields(cart.text)["csrf_token"]
    line = {"csrf_token": token, "product_id": mug.id, "variant_id": variant_id, "quantity": 3}
    expect(visitor.post(site.b.base + "/shop/cart/update", line), 302)
    cart = expect(visitor.get(site.a.base + "/shop/cart"), 200)
    assert f'id="qty-{variant_id}" name="quantity" value="3"' in cart.text, cart


def test_a_checkout_across_hosts_places_one_order_seen_on_both(site: TwoHosts, committed_app: Flask) -> None:
    create_member(committed_app, "ada")
    mug = create_mug(committed_app, stock=5)
    with committed_app.app_context():
        post = create_shipping("Post", "5.00")
    browser = Browser()
    expect(browser.login(site.a.base, "ada"), 302)
    expect(add_to_cart(browser, site.a.base, mug, 2), 302)
    queued = site.queued_jobs()

    # The checkout page (with its one-time checkout token) comes from B; the order is placed
    # through A.
    page = browser.form(site.b.base + "/shop/checkout")
    order_form = {
        "csrf_token": page["csrf_token"],
        "checkout_token": page["checkout_token"],
        "seen_total": page["seen_total"],
        "shipping_method": post.id,
        "discount_code": "",
        **ADDRESS,
    }
    placed = expect(browser.post(site.a.base + "/shop/checkout", order_form), 302)
    assert placed.location.startswith("/shop/orders/"), placed
    number = placed.location.rsplit("/", 1)[1]

    # The same form sent again, landing on B (a double click): the same order, not a second.
    again = expect(browser.post(site.b.base + "/shop/checkout", order_form), 302)
    assert again.location == placed.location

    assert number in expect(browser.get(site.b.base + "/shop/orders"), 200).text
    order_page = expect(browser.get(site.b.base + placed.location), 200)
    assert number in order_page.text and "$21.00" in order_page.text
    with committed_app.app_context():
        assert db.session.scalars(select(Order.number)).all() == [number]
        db.session.remove()
    assert mug_stock(committed_app, mug) == 3  # 5 - 2, taken once
    assert "Only 3 left" in expect(Browser().get(f"{site.b.base}/shop/products/{mug.slug}"), 200).text
    # The order's confirmation email waits in the one job queue (Redis), for a worker anywhere.
    assert site.queued_jobs() > queued


def test_a_rate_limit_is_counted_across_both_hosts(site: TwoHosts) -> None:
    client = Browser()
    token = client.form(site.a.base + "/auth/login")["csrf_token"]
    guess = {"csrf_token": token, "username": "nobody", "password": "a wrong guess"}

    alternating = [site.a, site.b] * (LOGIN_LIMIT // 2)
    answers = [client.post(host.base + "/auth/login", guess) for host in alternating]
    assert [page.status for page in answers] == [200] * LOGIN_LIMIT, answers[-1]
    # Each host counts down the one counter in Redis.
    remaining = [page.headers.get("X-RateLimit-Remaining") for page in answers]
    assert remaining == [str(n) for n in reversed(range(LOGIN_LIMIT))]

    for host in (site.a, site.b):
        refused = expect(client.post(host.base + "/auth/login", guess), 429)
        assert "Too many failed login attempts." not in refused.text  # the rate limit, not the throttle
    # Another client's address has its own count.
    expect(Browser().login(site.b.base, "nobody", "a wrong guess"), 200)


def test_a_post_published_through_one_host_refreshes_the_others_cached_home_page(
    site: TwoHosts, committed_app: Flask
) -> None:
    author = create_member(committed_app, "ada", AUTHOR)
    writer, visitor = Browser(), Browser()
    # Logged in first: a login writes to the members' table, which also refreshes the lists.
    expect(writer.login(site.a.base, "ada"), 302)
    # A visitor's home page through B renders the list of posts into the shared cache.
    expect(visitor.get(site.b.base + "/"), 200)

    # A post written behind the hosts' backs (by this process, whose app keeps its own cache):
    # A shows the list B cached, without it. The hosts read the list from the shared cache.
    with committed_app.app_context():
        posts.create_post(
            db.session.get_one(User, author.id), "Written behind their backs", "Unseen.", "", True
        )
        db.session.remove()
    assert "Written behind their backs" not in expect(visitor.get(site.a.base + "/"), 200).text

    # Published through A: A's commit drops the shared cache's list, so B shows it at once.
    token = writer.form(site.a.base + "/posts/new")["csrf_token"]
    post = {"csrf_token": token, "title": "Written through host A", "body": "Hello.", "publish": "y"}
    written = writer.post(site.a.base + "/posts/new", post)
    assert expect(written, 302).location.startswith("/posts/")
    home = expect(visitor.get(site.b.base + "/"), 200).text
    assert "Written through host A" in home
    assert "Written behind their backs" in home  # rendered afresh from the database


def test_nginx_spreads_one_member_over_both_hosts(site: TwoHosts, committed_app: Flask) -> None:
    create_member(committed_app, "ada")
    browser = Browser()
    login = browser.login(site.nginx.base, "ada")
    assert expect(login, 302).upstream, login

    pages = [browser.get(site.nginx.base + "/auth/password") for _ in range(6)]
    for page in pages:
        expect(page, 200)  # logged in, whichever host answered
    assert {site.host_at(page.upstream) for page in pages} == {"A", "B"}
    with committed_app.app_context():  # one login record in the database, read by both hosts
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 1
        db.session.remove()
