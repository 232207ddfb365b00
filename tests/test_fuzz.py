"""Fuzz: every form and every query parameter of the site, fed hostile values, answers no 5xx.

The test walks ``app.url_map``: it opens every GET page (as an admin, who reaches the admin
area, and as a visitor), records which query parameters each page reads and fuzzes them, and
collects every POST form the pages show. Each form is then submitted with a valid CSRF token
(so the request reaches validation and the services) once per hostile value in each field,
with each field missing and repeated, and with the wrong content types. A table of values keeps
it deterministic. Every POST route must have been reached through a form, so a new route
without one fails here until the test knows how to reach it.

Each request runs in a savepoint rolled back afterwards, with the client's cookies restored,
so a request that deletes, logs out or places an order leaves the next one the same site.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import ImmutableMultiDict

from blog.accounts import tokens
from blog.admin import services as admin_services
from blog.database_session import transaction
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.posts import services as posts
from blog.posts.models import Media
from blog.shop.models import FixedAmountDiscount
from tests.conftest import AuthActions, ShopActions, create_product, create_shipping, csrf_token, undone

Value = str | bytes

#: Text a person would never type, bytes no browser would send, numbers the columns cannot
#: hold, non-finite numbers, odd spellings of numbers and impossible dates. (NUL is refused
#: before any view runs, by its own test in test_security.py.)
HOSTILE: list[Value] = [
    "", "x" * 20_000, "\x01\x08\x1b\x7f\r\n", "\u202e\ufeff\U0001f600", b"\xff\xfe\xed\xa0\x80",
    "NaN", "sNaN", "-Infinity", "9" * 30, "-1", "2147483648", str(2**63), str(2**64),
    "\u0661\u0662", "1e309", "0." + "0" * 40 + "1", "9999-12-31T23:59",
]

#: Endpoints whose fuzzing would only measure something else (the static files).
SKIPPED = {"static"}
#: POST endpoints no page's form posts to: Stripe's webhook (Stripe posts it; fuzzed with
#: random bodies and signatures in tests/payments), "pay now", shown only with an online
#: provider, and "ask the provider again", shown only for a refund a crash left pending
#: (tests/payments drives both), and the newsletter's one-click unsubscribe, whose form is only
#: on the page its emailed link opens (tests/newsletter).
NOT_FROM_FORMS = {"payments.stripe_webhook", "payments.pay", "admin.retry_refund", "newsletter.unsubscribe"}


# --- recording which parameters a view reads ----------------------------------------------


READ: set[str] = set()


class RecordingDict(ImmutableMultiDict):  # type: ignore[type-arg]
    """Query and form data that remember which names the view asked for."""

    def __getitem__(self, key: Any) -> Any:
        READ.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:
        READ.add(key)
        return super().get(key, default, type)

    def getlist(self, key: Any, type: Any = None) -> Any:
        READ.add(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        READ.add(str(key))
        return super().__contains__(key)


class RecordingRequest(Request):
    parameter_storage_class = RecordingDict


# --- reading forms from pages --------------------------------------------------------------


@dataclass
class PageForm:
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    radios: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.action, tuple(sorted({name for name, _ in self.fields}))


class FormReader(HTMLParser):
    """The POST forms of a page, with the values a browser would send unchanged."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[PageForm] = []
        self.current: PageForm | None = None
        self.textarea: str | None = None
        self.select: str | None = None
        self.select_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            if a.get("method", "get").lower() == "post":
                self.current = PageForm(a.get("action") or self.page)
            return
        form = self.current
        if form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if kind == "radio":
                    form.radios.setdefault(name, a.get("value", "on"))
                if "checked" in a:
                    form.fields.append((name, a.get("value", "on")))
                    form.radios[name] = a.get("value", "on")
            elif kind not in ("submit", "file", "button", "image", "reset"):
                form.fields.append((name, a.get("value", "")))
        elif tag == "textarea" and name:
            self.textarea = name
            form.fields.append((name, ""))
        elif tag == "select" and name:
            self.select, self.select_value = name, None
        elif tag == "option" and self.select and (self.select_value is None or "selected" in a):
            self.select_value = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.textarea:
            name, value = self.current.fields[-1]
            self.current.fields[-1] = (name, value + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self.textarea = None
        elif tag == "select" and self.current is not None and self.select:
            self.current.fields.append((self.select, self.select_value or ""))
            self.select = None
        elif tag == "form" and self.current is not None:
            for name, value in self.current.radios.items():  # a browser sends the checked one
                if name not in {n for n, _ in self.current.fields}:
                    self.current.fields.append((name, value))
            self.forms.append(self.current)
            self.current = None


# --- the site under test -------------------------------------------------------------------


@dataclass
class Failure:
    who: str
    method: str
    url: str
    case: str
    outcome: str

    def __str__(self) -> str:
        return f"{self.who} {self.method} {self.url} [{self.case}]: {self.outcome}"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Rate limits would turn the login and register forms into 429s before validation.
    return {"RATELIMIT_ENABLED": False}


@pytest.fixture
def site(app: Flask, make_user: Callable[..., Any]) -> dict[str, Any]:
    """root (admin), who follows alice; a post with a tag and a comment; two products (one with two
    variants), shipping and a discount code; root's pending order and a cart to check out."""
    root = make_user("root", admin=True)
    alice = make_user("alice")
    bob = make_user("bob")  # not followed: his profile shows the follow button
    with app.app_context():
        # A live password-reset link of bob's, so its form is fuzzed too (for the other
        # token routes it is a link of the wrong kind: their "no longer works" page).
        token = tokens.make(tokens.RESET, bob.id, tokens.fingerprint(bob.password_hash))
        post = posts.create_post(db.session.get(type(root), root.id), "Hello world", "Body *text*.",
                                 "art, news", True)
        comment = posts.add_comment(post, db.session.get(type(alice), alice.id), "Nice post.")
        posts.follow(db.session.get(type(root), root.id), db.session.get(type(alice), alice.id))
        create_product("Print", [("A4", "12.00", 9), ("A3", "18.00", 9)], category="Prints")
        create_product("Mug", [("", "8.00", 9)])
        method = create_shipping("Post", "5.00")
        with transaction() as session:
            discount = FixedAmountDiscount(code="FIVE", amount=Decimal("5.00"), active=True)
            session.add(discount)
        # alice's comment told root by email: the outbox has a message.
        message_id = db.session.scalars(select(EmailMessage.id)).first()
        page = admin_services.save_page(None, "About", "", "About *us*.", "nav", 0)
        # An image in root's library: a row only (no file is ever read by these pages).
        with transaction() as session:
            media = Media(owner_id=root.id, name="0123456789abcdef0123456789abcdef-40x30.webp",
                          filename="photo.png")
            session.add(media)
        ids = {"post_id": post.id, "comment_id": comment.id, "method_id": method.id,
               "discount_id": discount.id, "user_id": alice.id, "message_id": message_id,
               "page_id": page.id, "media_id": media.id}
    return {"post": post.slug, "token": token, **ids}


def _snapshot(client: FlaskClient) -> dict[Any, Any]:
    return dict(client._cookies)


@contextmanager
def _isolated(app: Flask, client: FlaskClient) -> Iterator[None]:
    """Run one request in a savepoint that is rolled back, and give the client back its
    cookies afterwards: every request sees the same site and the same login."""
    cookies = _snapshot(client)
    try:
        with undone(app):
            yield
    finally:
        client._cookies = cookies


class Fuzzer:
    """Send requests and keep every 5xx (or exception) as a failure."""

    def __init__(self, app: Flask, client: FlaskClient, who: str) -> None:
        self.app, self.client, self.who = app, client, who
        self.failures: list[Failure] = []
        self.posted: set[str] = set()  # endpoints
        self.seen: set[str] = set()  # endpoints whose page answered 200
        self.requests = 0

    def send(self, method: str, url: str, case: str, **kwargs: Any) -> None:
        self.requests += 1
        with _isolated(self.app, self.client):
            try:
                response = self.client.open(url, method=method, **kwargs)
            except Exception as error:  # noqa: BLE001 - the test reports it as a failure
                self.failures.append(Failure(self.who, method, url, case, repr(error)[:300]))
                return
            response.close()  # a file answer (the favicon) holds its file open until closed
            if response.status_code >= 500:
                self.failures.append(Failure(self.who, method, url, case, str(response.status_code)))

    def get_query(self, path: str, params: list[str]) -> None:
        for name in params:
            for value in HOSTILE:
                self.send("GET", path, f"{name}={_short(value)}", query_string=urlencode([(name, value)]))
            self.send("GET", path, f"{name} repeated",
                      query_string=urlencode([(name, "1"), (name, "NaN"), (name, str(2**64))]))

    def post_form(self, form: PageForm, csrf: str) -> None:
        base = [(n, v) for n, v in form.fields if n != "csrf_token"]
        # The product form's variant rows are alike: the first one stands for them all.
        names = [n for n in dict.fromkeys(n for n, _ in base) if not re.match(r"variants-[1-9]", n)]

        def post(case: str, pairs: list[tuple[str, Value]]) -> None:
            self.send("POST", form.action, case, data=urlencode([("csrf_token", csrf), *pairs]),
                      content_type="application/x-www-form-urlencoded")

        post("as shown", list(base))
        post("every field missing", [])
        for name in names:
            others = [(n, v) for n, v in base if n != name]
            post(f"{name} missing", others)
            post(f"{name} repeated", [*base, (name, "NaN"), (name, str(2**64))])
            for value in HOSTILE:
                post(f"{name}={_short(value)}", [*others, (name, value)])
        headers = {"X-CSRFToken": csrf}
        self.send("POST", form.action, "json body", data=json.dumps(dict(base)),
                  content_type="application/json", headers=headers)
        self.send("POST", form.action, "text/plain", data="a=b", content_type="text/plain",
                  headers=headers)
        self.send("POST", form.action, "invalid UTF-8 body", headers=headers,
                  data=b"csrf_token=" + csrf.encode() + b"&" + b"&".join(
                      n.encode() + b"=%FF\xfe\xed\xa0\x80" for n in names),
                  content_type="application/x-www-form-urlencoded")
        self.send("POST", form.action, "multipart", headers=headers,
                  data={"csrf_token": csrf, **{n: "\u0661" for n in names}},
                  content_type="multipart/form-data")


def _short(value: Value) -> str:
    return repr(value[:20]) + (f"…({len(value)})" if len(value) > 20 else "")


def _url_values(site: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """A value for every URL argument of the site's routes, pointing at something that exists."""
    return {"slug": "print" if endpoint.startswith("shop.") else site["post"], "username": "alice",
            "name": "art", "number": site["number"], "product_id": site["product_id"], "action": "deactivate",
            "token": site["token"], "part_id": 1, "refund_id": 1, "send_id": 1,
            **{k: v for k, v in site.items() if k.endswith("_id")}}


def _get_urls(app: Flask, site: dict[str, Any]) -> list[tuple[str, str]]:
    """Every GET route of the site as (endpoint, URL), its arguments filled in."""
    urls = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if rule.endpoint in SKIPPED or "GET" not in (rule.methods or ()):
                continue
            values = _url_values(site, rule.endpoint)
            missing = rule.arguments - set(values) - set(rule.defaults or {})
            assert not missing, f"the fuzz test cannot fill {missing} of {rule.rule}: teach _url_values"
            args = {k: values[k] for k in rule.arguments if k not in (rule.defaults or {})}
            urls.append((rule.endpoint, url_for(rule.endpoint, **args)))
    urls.append(("blog.profile", "/users/bob"))
    return sorted(set(urls))


def _fuzz_as(app: Flask, client: FlaskClient, who: str, site: dict[str, Any],
             done: Fuzzer | None = None) -> Fuzzer:
    """Fuzz the query parameters of every page ``client`` can see, then every form on them.
    With ``done`` (the admin's run), only what that run could not reach, and the shop's forms
    (a visitor's cart is found another way)."""
    app.request_class = RecordingRequest
    fuzzer = Fuzzer(app, client, who)
    adapter = app.url_map.bind("localhost")
    forms: dict[tuple[str, tuple[str, ...]], tuple[PageForm, str]] = {}
    for endpoint, url in _get_urls(app, site):
        READ.clear()
        response = client.get(url)
        response.close()  # a file answer (the favicon) holds its file open until closed
        assert response.status_code < 500, (who, url, response.status_code)
        if response.status_code == 200:
            fuzzer.seen.add(endpoint)
        if done is None or endpoint not in done.seen:
            fuzzer.get_query(url, sorted(READ))
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        reader = FormReader(url)
        reader.feed(response.get_data(as_text=True))
        for form in reader.forms:
            # A form without a token (the newsletter's subscribe form) is fuzzed too; the
            # token sent along is ignored there.
            csrf = dict(form.fields).get("csrf_token") or ""
            target = adapter.match(urlsplit(form.action).path, method="POST")[0]
            if done is None or target not in done.posted or target.startswith("shop.cart"):
                forms.setdefault(form.key(), (form, csrf))
    for form, csrf in forms.values():
        fuzzer.post_form(form, csrf)
    fuzzer.posted.update(adapter.match(urlsplit(form.action).path, method="POST")[0]
                         for form, _ in forms.values())
    return fuzzer


@pytest.fixture
def admin_client(app: Flask, site: dict[str, Any], client: FlaskClient) -> FlaskClient:
    """root logged in, with a pending order and a cart ready for checkout."""
    auth, shop = AuthActions(client), ShopActions(client)
    auth.login("root")
    with app.app_context():
        from blog.shop.models import Order, Product

        mug = db.session.scalar(db.select(Product).where(Product.slug == "mug"))
        shop.add(mug, 1)
        shop.checkout(site["method_id"])
        site["number"] = db.session.scalar(db.select(Order.number))
        site["product_id"] = mug.id
    shop.add(mug, 1)
    return client


#: What a path argument is fuzzed with (a path segment cannot carry every byte).
PATH_VALUES = ["2147483648", str(2**63), str(2**64), "9" * 30, "0", "-1", "NaN", "\u0661", "x" * 300,
               "%FF%FE", "..%2f..", "%0A"]


def _fuzz_paths(app: Flask, fuzzer: Fuzzer, site: dict[str, Any], csrf: str) -> None:
    """Every URL argument of every route, in turn, replaced by a hostile value."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED:
            continue
        values = _url_values(site, rule.endpoint)
        method = "GET" if "GET" in (rule.methods or ()) else "POST"
        for target in rule.arguments - set(rule.defaults or {}):
            for value in PATH_VALUES:
                def fill(match: re.Match[str], target: str = target, value: str = value,
                         values: dict[str, Any] = values) -> str:
                    name = match.group(1)
                    return quote(value, safe="%") if name == target else quote(str(values[name]))

                path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>", fill, rule.rule)
                kwargs = {"data": {"csrf_token": csrf}} if method == "POST" else {}
                fuzzer.send(method, path, f"<{target}>={value[:20]}", **kwargs)


def test_no_form_or_query_parameter_answers_5xx(app: Flask, site: dict[str, Any],
                                                admin_client: FlaskClient) -> None:
    admin = _fuzz_as(app, admin_client, "admin", site)
    visitor = _fuzz_as(app, app.test_client(), "visitor", site, done=admin)
    _fuzz_paths(app, admin, site, csrf_token(admin_client, "/"))
    failures = admin.failures + visitor.failures
    assert not failures, f"{len(failures)} 5xx answers:\n" + "\n".join(map(str, failures[:80]))
    # Every route that takes a POST was reached through a form of some page.
    posted = admin.posted | visitor.posted
    post_endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                      if "POST" in (rule.methods or ())} - NOT_FROM_FORMS
    assert post_endpoints <= posted, f"no form on any page posts to {sorted(post_endpoints - posted)}"
    print(f"{admin.requests + visitor.requests} requests")


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found))


def test_every_form_of_the_site_treats_absent_fields_as_empty(app: Flask) -> None:
    """The forms fuzzed above are those pages show; this holds for any other form too."""
    from flask_wtf import FlaskForm
    from wtforms import Form

    from blog.forms import SiteForm, SiteSubForm

    ours = [form for form in _subclasses(Form) if form.__module__.startswith("blog.")]
    assert any(issubclass(form, FlaskForm) for form in ours)  # the domains' forms are loaded
    wrong = [form.__qualname__ for form in ours if not issubclass(form, (SiteForm, SiteSubForm))]
    assert not wrong, f"derive these from blog.forms.SiteForm (or SiteSubForm): {wrong}"


def test_every_integer_in_a_route_is_an_id_the_tables_can_hold(app: Flask) -> None:
    """``<int:...>`` would match 2**64 and send it to the database; ``<id:...>`` stops at
    PostgreSQL's INTEGER."""
    from werkzeug.routing.converters import NumberConverter

    from blog.forms import MAX_ID, IdConverter

    for rule in app.url_map.iter_rules():
        for name, converter in rule._converters.items():
            if isinstance(converter, NumberConverter):
                assert isinstance(converter, IdConverter), f"{rule.rule}: use <id:{name}>"
    adapter = app.url_map.bind("localhost")
    assert adapter.match(f"/admin/products/{MAX_ID}/edit")[1] == {"product_id": MAX_ID}
