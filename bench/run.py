"""The home page, its lists, search and checkout against the goals of issue #15.

    python -m bench.run [--database-url postgresql://...] [--quick] [--profile] [--skip-http]

On the data set of :mod:`bench.data` (100,000 posts by about 1,000 authors; ``--quick``:
2,000 posts and short rounds, to check the harness in a minute or two), 20 posts a page:

- **Throughput over HTTP**: the app under gunicorn (2 sync workers) against the two floors of
  :mod:`bench.floor`, each under gunicorn the same way, driven by :mod:`bench.load`'s
  generator in interleaved rounds (each server goes first in turn); the table shows the
  median ratio of the rounds and their spread. Twice: the app as deployed (a visitor's list
  comes from its cache) and with the list cache off (:mod:`bench.cache`).
- **CPU per request in-process**: the app's WSGI callable against the hand-written floor's
  function in this process, ``time.process_time``, in alternating rounds. On PostgreSQL the
  database's CPU is another process's and is not counted.
- **Lists**, with the list cache off so that every request makes its list: the deepest full
  page against the first, a page past the end, 100 posts a page against 20 (wall time), and
  the statements each list page runs (counted by ``blog.database``'s statement counter).
- **Search** for two common words against the home page (CPU, list cache off).
- **Open-loop latency**: rounds of requests on a fixed schedule at 70% of the highest rate
  (measured just before each round), p50 and p99 counted from when each request was due.
- **Checkout**: 16 buyers, each its own session, logged in through the form, adding to the
  cart and placing orders as fast as answers come; then 16 buyers racing for 10 items, which
  must sell exactly 10.

Before measuring, it checks that both floors draw the app's pages byte for byte (CSRF tokens
masked) and stops with a diff if they do not. It prints one Markdown table, each row with
its goal and PASS or MISS ("-": reported, no goal), then notes. The machine's other work
shows in the rounds' spread; the header prints the load average before and after.
"""

from __future__ import annotations

import argparse
import cProfile
import difflib
import io
import logging
import os
import platform
import pstats
import re
import shutil
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from sqlalchemy import bindparam, create_engine, event, func, text
from werkzeug.test import EnvironBuilder

from bench import data, load
from bench.floor import Database, HandFloor, OwnFloor, Spec
from bench.load import Browser, LoadResult, form_inputs, median_spread

PER_PAGE = 20
DEMO_PASSWORD = "inkwell-demo"  # what `flask seed` gives every demo member (blog.seed.results)
READER = "reader"  # the seeded member who writes nothing: what a plain reader sees
BUYERS = 16
SCARCE_STOCK = 10


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure."""

    rounds: int  # interleaved rounds of every A/B comparison
    round_seconds: float  # each side of an HTTP round
    cpu_seconds: float  # each side of an in-process round
    open_loop_seconds: float
    checkout_seconds: float
    concurrency: int = 8  # connections of the closed-loop generator (4 per worker)


FULL = Settings(rounds=5, round_seconds=4.0, cpu_seconds=1.0, open_loop_seconds=10.0, checkout_seconds=15.0)
QUICK = Settings(rounds=3, round_seconds=1.0, cpu_seconds=0.25, open_loop_seconds=3.0, checkout_seconds=3.0)


@dataclass
class Row:
    what: str
    measured: str
    goal: str
    verdict: str  # PASS, MISS, or "-" (reported, no goal)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def times(ratio: float) -> str:
    """A ratio with the digits that matter: 0.0022×, 0.45×, 36×."""
    if ratio >= 10:
        return f"{ratio:.0f}×"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


# --- the app in this process -----------------------------------------------------------------


def make_app(url: str, instance: Path, *, lists_cached: bool, per_page: int = PER_PAGE) -> Flask:
    """Inkwell with the bench's settings and its cache as deployed without Redis (files in
    the instance folder); without ``lists_cached``, a cache that never holds a post list
    (:class:`bench.cache.ListlessCache`), so every list is made afresh."""
    from blog import create_app

    instance.mkdir(parents=True, exist_ok=True)
    os.environ["INKWELL_INSTANCE_PATH"] = str(instance)
    config: dict[str, Any] = {
        "DATABASE_URL": url, "SECRET_KEY": data.SECRET_KEY, "POSTS_PER_PAGE": per_page,
        "SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_SECURE": False,
        # The request log line would print thousands of lines here; under gunicorn it is on.
        "LOG_LEVEL": "WARNING", "JOBS_DATABASE": str(instance / "jobs.sqlite3"),
    }
    config.update(CACHE_TYPE="FileSystemCache" if lists_cached else "bench.cache.ListlessCache",
                  CACHE_DIR=str(instance / "cache"))
    return create_app(config)


class Caller:
    """Calls a WSGI app the way a server would, with a prepared environ: nothing of a test
    client's bookkeeping is counted against the app."""

    def __init__(self, app: Any, path: str = "/", cookie: str | None = None) -> None:
        self.app = app
        headers = [("Cookie", cookie)] if cookie else []
        # The client address and user agent of log_in's test client: the same browser as the
        # one that logged in, so Flask-Login's session protection finds the session it made
        # (from another address it would mark the session not fresh and rewrite the cookie
        # on every request, which no real browser's requests cost).
        self.environ = EnvironBuilder(path=path, base_url="http://127.0.0.1/", headers=headers,
                                      environ_base=app.test_client().environ_base).get_environ()
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def _start(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status, self.headers = status, headers

    def __call__(self) -> bytes:
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        body = self.app(environ, self._start)
        try:
            return b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


def count_and_time(app: Flask, path: str, cookie: str | None = None) -> tuple[int, int, float, str | None]:
    """(status, statements, seconds, Location) of one request, the statements counted by
    the app's own counter."""
    from blog.database import count_statements

    caller = Caller(app, path, cookie)
    with count_statements() as counter:
        started = time.perf_counter()
        caller()
        seconds = time.perf_counter() - started
    return caller.code, counter.count, seconds, caller.header("Location")


def log_in(app: Flask, username: str, password: str) -> str:
    """Log in through the real form in-process; the Cookie header of the session."""
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    fields = form_inputs(page, "/auth/login")
    fields.update(username=username, password=password)
    fields.pop("remember", None)
    answer = client.post("/auth/login", data=fields)
    if answer.status_code not in (302, 303):
        raise SystemExit(f"in-process login as {username} failed: {answer.status_code}")
    client.get("/")  # shows (and so drops) the welcome message
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        raise SystemExit("no session cookie after logging in")
    return f"{cookie.key}={cookie.value}"


# --- capturing Inkwell's own statements -------------------------------------------------------


_SITE_TABLES = re.compile(r"\bFROM\s+(site_settings|pages)\b", re.IGNORECASE)


def capture_home(app: Flask) -> list[tuple[str, Any, datetime, datetime]]:
    """The statements a visitor's ``GET /`` sends to the driver, with their parameters and
    the moments before and after (to recognize the request's "now" among the parameters).
    ``app`` must be one without the list cache. Should the site's settings be read (the
    cache was cold), those statements are left out: the app keeps them in its cache, and
    the floors hold them in memory."""
    from blog.extensions import db

    caught: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        caught.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        before = datetime.now(UTC)
        caller = Caller(app)
        caller()
        after = datetime.now(UTC)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    if caller.code != 200:
        raise SystemExit(f"GET / answered {caller.status}")
    return [(sql, params, before, after) for sql, params in caught if not _SITE_TABLES.search(sql)]


def _is_now(value: Any, before: datetime, after: datetime) -> bool:
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?", value):
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return moment is not None and before - timedelta(seconds=1) <= moment <= after + timedelta(seconds=1)


def own_statements(caught: list[tuple[str, Any, datetime, datetime]], url: str) -> dict[str, Any]:
    """The ``own`` part of a floor spec (see :class:`bench.floor.OwnFloor`) from a capture."""
    page = next((i for i, (sql, *_) in enumerate(caught) if "posts.slug" in sql), None)
    # The tags come with the page (a column of names) or by a statement of their own.
    tags = next((i for i, (sql, *_) in enumerate(caught)
                 if i != page and "post_tags" in sql and "tags.name" in sql), None)
    if page is None:
        raise SystemExit("could not find the page's statement among:\n"
                         + "\n---\n".join(sql for sql, *_ in caught))

    def template(value: Any, before: datetime, after: datetime) -> dict[str, Any]:
        if _is_now(value, before, after):
            return {"now": True}
        if isinstance(value, datetime):
            return {"datetime": value.isoformat()}
        return {"value": value}

    statements = []
    for sql, params, before, after in caught:
        if isinstance(params, dict):
            shaped: Any = {name: template(value, before, after) for name, value in params.items()}
        else:
            shaped = [template(value, before, after) for value in params]
        statements.append({"sql": sql, "params": shaped})

    # Run the page's statement as captured, to learn its rows' ids (the tags' statement
    # names them) and which column holds what a list item shows.
    database = Database(url)
    try:
        sql, params, *_ = caught[page]
        names, rows = database.query(sql, params)
        id_at = names.index("id")
        ids = [row[id_at] for row in rows]
        if tags is not None:
            tag_params = statements[tags]["params"]
            items = tag_params.items() if isinstance(tag_params, dict) else enumerate(tag_params)
            for key, parameter in list(items):
                if parameter.get("value") in ids and not isinstance(parameter.get("value"), bool):
                    tag_params[key] = {"id": ids.index(parameter["value"])}
        elif "tag_names" not in names:
            raise SystemExit(f"the page's statement has no tag names and no statement reads them: {names}")
        marks = ", ".join(["%s"] * len(ids))
        _, truth = database.query(database.sql(
            f"SELECT p.id, (SELECT count(*) FROM comments c WHERE c.post_id = p.id), "
            f"(SELECT count(*) FROM likes l WHERE l.post_id = p.id) "
            f"FROM posts p WHERE p.id IN ({marks})"), ids)
    finally:
        database.close()
    counts = {row[0]: (row[1], row[2]) for row in truth}
    columns = {name: name for name in ("id", "title", "slug", "excerpt", "published", "published_at",
                                       "members_only", "cover", "username")}
    missing = [name for name in columns if name not in names]
    if missing:
        raise SystemExit(f"the page's statement has no column {missing}: {names}")
    if tags is None:
        columns["tag_names"] = "tag_names"
    # The counts come named, or as anonymous labels (anon_1 ...): matched by their values.
    anonymous = [name for name in names if name.startswith("anon_")]
    for attribute, which in (("comment_count", 0), ("like_count", 1)):
        if attribute in names:
            columns[attribute] = attribute
            continue
        wanted = [counts[post_id][which] for post_id in ids]
        found = [name for name in anonymous if [row[names.index(name)] for row in rows] == wanted]
        if not found:
            raise SystemExit(f"no column of the page's statement holds {attribute}: {names}")
        columns[attribute] = found[0]
        anonymous.remove(found[0])
    if "liked_by_viewer" in names:
        columns["liked_by_viewer"] = "liked_by_viewer"
    elif len(anonymous) == 1:
        columns["liked_by_viewer"] = anonymous[0]
    return {"statements": statements, "page": page, "tags": tags, "columns": columns}


def floor_spec(app: Flask, url: str, own: dict[str, Any] | None) -> Spec:
    """What the floors need to know of the site, read from the app."""
    from blog.pages.services import current_site

    with app.test_request_context("/"):
        site = current_site()
    routes: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        routes.setdefault(rule.endpoint, rule.rule)
    return Spec(
        database_url=url, templates=str(data.REPOSITORY / "templates"), site_url=app.config["SITE_URL"],
        timezone=app.config["SITE_TIMEZONE"], per_page=app.config["POSTS_PER_PAGE"],
        secret_key=app.config["SECRET_KEY"], session_cookie=app.config["SESSION_COOKIE_NAME"],
        session_max_age=int(app.permanent_session_lifetime.total_seconds()),
        site={"title": site.title, "tagline": site.tagline, "description": site.description,
              "footer": site.footer, "social_links": [[link.label, link.url] for link in site.social_links],
              "nav_pages": [[page.slug, page.title] for page in site.nav_pages],
              "footer_pages": [[page.slug, page.title] for page in site.footer_pages]},
        routes=routes, own=own)


_CSRF = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]*(")')


def same_page(what: str, expected: str, got: str) -> None:
    """Stop with a diff unless ``got`` is ``expected`` byte for byte (CSRF tokens masked: they
    are signed with the moment they are made)."""
    expected, got = _CSRF.sub(r"\1…\2", expected), _CSRF.sub(r"\1…\2", got)
    if expected == got:
        return
    diff = difflib.unified_diff(expected.splitlines(), got.splitlines(), "app", what, lineterm="", n=2)
    raise SystemExit(f"{what} does not draw the app's page byte for byte:\n" + "\n".join(list(diff)[:60]))


# --- measuring --------------------------------------------------------------------------------


def per_call(function: Callable[[], object], seconds: float, clock: Callable[[], float]) -> float:
    """Seconds of ``clock`` per call of ``function``, calling it for about ``seconds``."""
    calls, started = 0, clock()
    wall_end = time.perf_counter() + seconds
    while True:
        function()
        calls += 1
        if time.perf_counter() >= wall_end:
            return (clock() - started) / calls


def ab_rounds(a: Callable[[], object], b: Callable[[], object], settings: Settings,
              clock: Callable[[], float] = time.process_time) -> tuple[list[float], list[float]]:
    """Per-call cost of ``a`` and of ``b`` in alternating rounds (ABBA ...)."""
    a(), b()  # warm both: first calls compile templates, fill caches, prepare statements
    costs_a: list[float] = []
    costs_b: list[float] = []
    for round_ in range(settings.rounds):
        for side in ((a, b) if round_ % 2 == 0 else (b, a)):
            cost = per_call(side, settings.cpu_seconds, clock)
            (costs_a if side is a else costs_b).append(cost)
    return costs_a, costs_b


def ratio_text(ratios: list[float], a: list[float], b: list[float], a_name: str, b_name: str) -> str:
    middle, low, high = median_spread(ratios)
    return (f"{times(middle)} ({a_name} {ms(statistics.median(a))} vs {b_name} {ms(statistics.median(b))}; "
            f"rounds {times(low)}–{times(high)})")


def alternate_latency(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time of ``a`` and of ``b``, called alternately ``repeats`` times each."""
    a(), b()
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(repeats):
        for side, times in ((a, times_a), (b, times_b)):
            started = time.perf_counter()
            side()
            times.append(time.perf_counter() - started)
    return statistics.median(times_a), statistics.median(times_b)


def common_words(url: str) -> list[str]:
    """Two words that most posts contain (by a sample of 1,000 posts): a search that matches
    a large part of the blog, the slow case."""
    stop = {"that", "this", "with", "from", "have", "there", "they", "were", "what", "when", "which",
            "about", "your", "their", "them", "then", "than", "into", "been", "more", "some", "only",
            "just", "like", "would", "could", "every", "after", "before", "because", "where", "those"}
    database = Database(url)
    try:
        _, rows = database.query("SELECT body FROM posts ORDER BY id LIMIT 1000")
    finally:
        database.close()
    frequency: Counter[str] = Counter()
    for (body,) in rows:
        frequency.update(set(re.findall(r"[a-z]{4,}", body.lower())) - stop)
    return [word for word, _ in frequency.most_common(2)]


# --- checkout -----------------------------------------------------------------------------------


@dataclass
class CheckoutResult:
    orders: int
    seconds: float
    requests: int
    statuses: Counter[int]
    refused: int


def _prepare_buyers(url: str, count: int, plenty: int) -> tuple[list[str], list[tuple[int, int, str]]]:
    """``count`` active members to buy (never the admin), carts emptied; and two products of
    the shop: (product id, variant id, slug), the first given ``plenty`` in stock."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            names = list(connection.scalars(text(
                "SELECT username FROM users WHERE active = :yes AND username NOT IN ('admin', :reader) "
                "ORDER BY id LIMIT :count"), {"yes": True, "reader": READER, "count": count}))
            connection.execute(text(
                "DELETE FROM cart_items WHERE cart_id IN (SELECT c.id FROM carts c JOIN users u "
                "ON u.id = c.user_id WHERE u.username IN :names)").bindparams(
                    bindparam("names", expanding=True)), {"names": names})
            products = [tuple(row) for row in connection.execute(text(
                "SELECT p.id, v.id, p.slug FROM products p JOIN variants v ON v.product_id = p.id "
                "WHERE p.active = :yes ORDER BY p.id, v.id"), {"yes": True})]
            chosen: list[tuple[int, int, str]] = []
            for product in products:  # two different products
                if all(product[0] != other[0] for other in chosen):
                    chosen.append((int(product[0]), int(product[1]), str(product[2])))
                if len(chosen) == 2:
                    break
            connection.execute(text("UPDATE variants SET stock = :stock WHERE id = :id"),
                               {"stock": plenty, "id": chosen[0][1]})
    finally:
        engine.dispose()
    if len(names) < count or len(chosen) < 2:
        raise SystemExit(f"the data set has too few members ({len(names)}) or products ({len(chosen)})")
    return names, chosen


def _stock(url: str, variant_id: int, set_to: int | None = None) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            if set_to is not None:
                connection.execute(text("UPDATE variants SET stock = :s WHERE id = :id"),
                                   {"s": set_to, "id": variant_id})
            stock = connection.scalar(text("SELECT stock FROM variants WHERE id = :id"), {"id": variant_id})
            return int(stock)
    finally:
        engine.dispose()


def _order_count(url: str, variant_id: int) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT coalesce(sum(quantity), 0) FROM order_items "
                                              "WHERE variant_id = :id"), {"id": variant_id}))
    finally:
        engine.dispose()


ADDRESS = {"full_name": "Bench Buyer", "address_line1": "1 Load Street", "address_line2": "",
           "city": "Testville", "postal_code": "AB1 2CD", "country": "Portugal", "discount_code": ""}


def _buy(browser: Browser, product: tuple[int, int, str], token: str, counts: Counter[int],
         gate: threading.Barrier | None = None) -> str:
    """Put one of ``product`` in the cart and place the order: "placed", "refused" or "error"."""
    product_id, variant_id, _ = product
    status, _, _ = browser.post("/shop/cart/add", {
        "product_id": str(product_id), "variant_id": str(variant_id), "quantity": "1", "csrf_token": token})
    counts[status] += 1
    status, _, page = browser.get("/shop/checkout")
    counts[status] += 1
    if status != 200:
        return "error" if status >= 500 else "refused"
    fields = {**form_inputs(page, "/shop/checkout"), **ADDRESS}
    fields.pop("action", None)
    if gate is not None:
        gate.wait()
    status, headers, _ = browser.post("/shop/checkout", fields)
    counts[status] += 1
    if status >= 500:
        return "error"
    return "placed" if status in (302, 303) and "/shop/orders/" in headers.get("location", "") else "refused"


def checkout(server: load.Server, url: str, seconds: float) -> tuple[CheckoutResult, dict[str, Any]]:
    """16 buyers placing orders for ``seconds``; then 16 buyers racing for 10 items."""
    names, (plenty, scarce) = _prepare_buyers(url, BUYERS, 1_000_000)
    browsers, tokens = [], []
    for name in names:
        browser = Browser(server.address)
        browser.log_in(name, DEMO_PASSWORD)
        _, _, page = browser.get(f"/shop/products/{plenty[2]}")
        token = form_inputs(page, "/shop/cart/add").get("csrf_token")
        if not token:
            raise SystemExit(f"no add-to-cart form on /shop/products/{plenty[2]}")
        browsers.append(browser)
        tokens.append(token)
    before = _order_count(url, plenty[1])

    counts: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start_gate = threading.Barrier(BUYERS)
    deadline = [0.0]

    def buyer(index: int) -> None:
        mine: Counter[int] = Counter()
        results: Counter[str] = Counter()
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            results[_buy(browsers[index], plenty, tokens[index], mine)] += 1
        with lock:
            counts.update(mine)
            outcomes.update(results)

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(BUYERS)]
    started = time.perf_counter()
    deadline[0] = started + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    sold = _order_count(url, plenty[1]) - before
    result = CheckoutResult(outcomes["placed"], elapsed, sum(counts.values()), counts, outcomes["refused"])
    if sold != outcomes["placed"]:
        raise SystemExit(f"checkout: {outcomes['placed']} orders confirmed but {sold} units sold")

    # The race: more buyers than items, each placing at the same moment.
    _stock(url, scarce[1], set_to=SCARCE_STOCK)
    sold_before = _order_count(url, scarce[1])
    race: Counter[str] = Counter()
    race_counts: Counter[int] = Counter()
    gate = threading.Barrier(BUYERS)

    def racer(index: int) -> None:
        mine: Counter[int] = Counter()
        outcome = _buy(browsers[index], scarce, tokens[index], mine, gate)
        with lock:
            race[outcome] += 1
            race_counts.update(mine)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(BUYERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left = _stock(url, scarce[1])
    race_sold = _order_count(url, scarce[1]) - sold_before
    return result, {"placed": race["placed"], "refused": race["refused"], "errors": race["error"],
                    "left": left, "sold": race_sold, "statuses": race_counts}


# --- the run ----------------------------------------------------------------------------------


def profile(app: Flask, path: str, cookie: str | None, calls: int, title: str) -> None:
    """Where a request's CPU goes: cProfile's top functions by own time and by cumulative
    time, over ``calls`` requests."""
    caller = Caller(app, path, cookie)
    caller()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        caller()
    profiler.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(22)
        print(f"\n#### profile: {title}, {calls} requests, by {order}\n```")
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print("\n".join(lines[start:]))
        print("```")


class SlowStatements(logging.Handler):
    """Collects the app's slow-statement warnings (``inkwell.sql``) instead of printing them
    in the middle of the run; the table's notes sum them up."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: dict[str, tuple[int, float]] = {}  # statement's start -> (times, slowest ms)

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"slow statement \((\d+) ms\): (.*)", record.getMessage(), re.DOTALL)
        if found:
            statement = " ".join(found.group(2).split())
            # Its start says what it reads, its end (WHERE, ORDER BY, parameters) which case.
            key = statement if len(statement) <= 200 else f"{statement[:70]} … {statement[-130:]}"
            times, slowest = self.seen.get(key, (0, 0.0))
            self.seen[key] = (times + 1, max(slowest, float(found.group(1))))

    def summary(self) -> list[str]:
        ranked = sorted(self.seen.items(), key=lambda item: -item[1][1])
        return [f"{times}× up to {slowest:.0f} ms: `{statement}`"
                for statement, (times, slowest) in ranked[:4]]


@dataclass
class Context:
    """What the parts of a run share."""

    args: argparse.Namespace
    settings: Settings
    url: str
    kind: str
    run_dir: Path
    rows: dict[str, Row]
    notes: list[str]


def check_floors(ctx: Context, listed: Flask, fresh: Flask) -> tuple[Spec, str, str]:
    """Capture the app's statements, build the floors' spec, and check that both floors
    draw the app's pages byte for byte; (spec, the second page's path, a member's cookie)."""
    print("Checking the floors draw the app's page byte for byte ...", flush=True)
    caller = Caller(fresh)
    caller()
    if count_and_time(fresh, "/")[1] == 0:
        raise SystemExit("the app without the list cache ran no SQL for its second GET /: the list "
                         "cache's keys have changed (see bench/cache.py)")
    spec = floor_spec(fresh, ctx.url, own_statements(capture_home(fresh), ctx.url))
    own, hand = OwnFloor(spec), HandFloor(spec)
    try:
        home_html = Caller(fresh)().decode()
        same_page("the app with its list cache", home_html, Caller(listed)().decode())
        same_page("the own-statements floor", home_html, own.home())
        same_page("the hand-written floor", home_html, hand.home())
        older = re.search(r'rel="next" href="\?cursor=([^"]+)"', home_html)
        if older is None:
            raise SystemExit("the home page has no link to older posts")
        second = f"/?cursor={older.group(1)}"
        same_page("the hand-written floor, page 2", Caller(fresh, second)().decode(),
                  hand.home(f"cursor={older.group(1)}"))
        cookie = log_in(fresh, READER, DEMO_PASSWORD)
        same_page("the hand-written floor, logged in", Caller(fresh, "/", cookie)().decode(),
                  hand.home("", cookie))
    finally:
        own.close()
        hand.close()
    print("  identical (anonymous pages 1 and 2, logged in; CSRF tokens masked)", flush=True)
    return spec, second, cookie


def cpu_rows(ctx: Context, spec: Spec, listed: Flask, fresh: Flask, cookie: str) -> None:
    """CPU per request in this process: the app against the hand-written floor."""
    print("In-process CPU per request ...", flush=True)
    note = "" if ctx.kind == "sqlite" else " (this process only: PostgreSQL's CPU is not counted)"
    hand = HandFloor(spec)
    try:
        comparisons = [
            ("cpu", "home page vs the hand-written floor, CPU per request in-process" + note,
             Caller(listed), hand.home, "≥ 0.5×", 0.5),
            ("cpu-fresh", "… the same with the list cache off (each request makes the list)" + note,
             Caller(fresh), hand.home, "(≥ 0.5×)", None),
            ("member", "home page logged in vs the hand-written floor, CPU in-process" + note,
             Caller(listed, "/", cookie), lambda: hand.home("", cookie), "≥ 0.45×", 0.45),
        ]
        for key, what, app_side, floor_side, goal, least in comparisons:
            app_cpu, floor_cpu = ab_rounds(app_side, floor_side, ctx.settings)
            ratios = [f / a for a, f in zip(app_cpu, floor_cpu, strict=True)]
            ctx.rows[key] = Row(what, ratio_text(ratios, app_cpu, floor_cpu, "app", "floor"), goal,
                                verdict(statistics.median(ratios) >= least) if least else "-")
    finally:
        hand.close()


def list_rows(ctx: Context, spec: Spec, fresh: Flask, hundred: Flask, second: str, cookie: str) -> str:
    """Deep pages, past the end, page size and statements, the list cache off; returns the
    search query used."""
    print("Lists: deep pages, past the end, page size, statements ...", flush=True)
    from blog.extensions import db
    from blog.posts import fragments, services

    with fresh.test_request_context("/"):
        public = db.session.scalar(services.published_posts().with_only_columns(func.count()).order_by(None))
    # The last full page (4,749 of 94,982 public posts): the 4,750 is the last page,
    # which holds two posts and would flatter the deep page.
    deepest = max(2, int(public or 0) // PER_PAGE)
    pages = -(-int(public or 0) // PER_PAGE)
    past_end = pages + max(1, pages // 19)  # 5,000 for 4,750 pages, as in the issue
    status, _, _, location = count_and_time(fresh, f"/?page={deepest}")
    if status != 302 or not location:
        raise SystemExit(f"/?page={deepest} answered {status}, not a redirect to its cursor")
    deep_path = "/?" + urlsplit(location).query
    deep_cursor = parse_qs(urlsplit(location).query)["cursor"][0]
    repeats = 15 if ctx.args.quick else 40
    deep_time, first_time = alternate_latency(Caller(fresh, deep_path), Caller(fresh), repeats)
    ctx.rows["deep"] = Row(f"page {deepest:,} of `/` vs page 1 (list cache off, wall time)",
                           f"{times(deep_time / first_time)} ({ms(deep_time)} vs {ms(first_time)})", "≤ 1.2×",
                           verdict(deep_time / first_time <= 1.2))
    hand = HandFloor(spec)
    try:
        hand_deep, hand_first = alternate_latency(lambda: hand.home(f"cursor={deep_cursor}"), hand.home,
                                                  repeats)
    finally:
        hand.close()
    ctx.notes.append(f"The hand-written floor's page {deepest:,} vs its page 1: "
                     f"{times(hand_deep / hand_first)} ({ms(hand_deep)} vs {ms(hand_first)}).")
    redirects = [count_and_time(fresh, f"/?page={deepest}") for _ in range(3)]
    ctx.notes.append(f"`/?page={deepest:,}` (an old link) costs {redirects[0][1]} statement(s) and "
                     f"{ms(statistics.median(r[2] for r in redirects))} before its redirect to the cursor.")
    with fresh.app_context():
        fragments.forget()  # as after a write: the first old link counts the list again
    ends = [count_and_time(fresh, f"/?page={past_end}") for _ in range(4)]
    first_end, later_ends = ends[0], ends[1:]
    statuses = "/".join(sorted({str(end[0]) for end in ends}))
    later_time = ms(statistics.median(end[2] for end in later_ends))
    ctx.rows["past-end"] = Row(
        f"a page past the end (`?page={past_end:,}`, list cache off)",
        f"{statuses}, {max(end[1] for end in later_ends)} statement(s), {later_time}; the first after "
        f"a write counts the list: {first_end[1]} statement(s), {ms(first_end[2])}",
        "404, no query",
        verdict(all(end[0] == 404 for end in ends) and all(end[1] == 0 for end in later_ends)))
    hundred_time, twenty_time = alternate_latency(Caller(hundred), Caller(fresh), repeats)
    ctx.rows["hundred"] = Row(
        "100 posts per page vs 20 (list cache off, wall time)",
        f"{times(hundred_time / twenty_time)} ({ms(hundred_time)} vs {ms(twenty_time)})",
        "≤ 3×", verdict(hundred_time / twenty_time <= 3))
    counted = {
        "page 1": count_and_time(fresh, "/")[1],
        "page 2": count_and_time(fresh, second)[1],
        f"page {deepest:,}": count_and_time(fresh, deep_path)[1],
        "100 per page": count_and_time(hundred, "/")[1],
    }
    member = count_and_time(fresh, "/", cookie)[1]
    ctx.rows["statements"] = Row(
        "statements per list page (visitor, list cache off)",
        ", ".join(f"{k}: {v}" for k, v in counted.items()) + f"; member: {member}",
        "constant, fewer is fine", verdict(len(set(counted.values())) == 1))

    words = common_words(ctx.url)
    query = "/search?q=" + "+".join(words)
    search = Caller(fresh, query)
    search()
    search_status, search_statements = search.code, count_and_time(fresh, query)[1]
    print(f"Search for {' '.join(words)} ...", flush=True)
    search_cpu, home_cpu = ab_rounds(search, Caller(fresh), ctx.settings)
    ratios = [s / h for s, h in zip(search_cpu, home_cpu, strict=True)]
    middle, low, high = median_spread(ratios)
    note = "" if ctx.kind == "sqlite" else ", this process only"
    ctx.rows["search"] = Row(
        f"search for two common words (`{' '.join(words)}`) vs the home page, CPU (list cache off{note})",
        f"{times(middle)} ({ms(statistics.median(search_cpu))} vs {ms(statistics.median(home_cpu))}; "
        f"rounds {times(low)}–{times(high)}; {search_status}, {search_statements} statements)",
        "≤ 2×", verdict(middle <= 2 and search_status == 200))
    return query


def http_rows(ctx: Context, spec: Spec) -> None:
    """Throughput against the floors, open-loop latency and checkout, all under gunicorn."""
    print("Over HTTP: gunicorn, 2 sync workers each ...", flush=True)
    settings, run_dir = ctx.settings, ctx.run_dir
    spec_path = run_dir / "floor-spec.json"
    spec.save(str(spec_path))
    app_env = data.flask_env(ctx.url, run_dir / "http-instance")
    app_env.update(FLASK_POSTS_PER_PAGE=str(PER_PAGE), FLASK_SESSION_COOKIE_SECURE="false")
    fresh_env = data.flask_env(ctx.url, run_dir / "http-instance-fresh")
    fresh_env.update(FLASK_POSTS_PER_PAGE=str(PER_PAGE), FLASK_SESSION_COOKIE_SECURE="false",
                     FLASK_CACHE_TYPE="bench.cache.ListlessCache",
                     FLASK_CACHE_DIR=str(run_dir / "http-instance-fresh" / "cache"))
    floor_env = dict(app_env, BENCH_FLOOR_SPEC=str(spec_path))
    with ExitStack() as stack:
        servers = [stack.enter_context(load.gunicorn(name, target, env, run_dir / f"gunicorn-{name}.log"))
                   for name, target, env in (("app", "wsgi:app", app_env),
                                             ("app-fresh", "wsgi:app", fresh_env),
                                             ("own", "bench.floor:own_app()", floor_env),
                                             ("hand", "bench.floor:hand_app()", floor_env))]
        app_server = servers[0]
        bodies = {server.name: load.request(server.address, "GET", "/")[2].decode() for server in servers}
        for server in servers[1:]:
            same_page(f"{server.name} under gunicorn", bodies["app"], bodies[server.name])
        raw = load.raw_get("/")
        rates: dict[str, list[float]] = {server.name: [] for server in servers}
        shares: list[float] = []
        failures: Counter[int] = Counter()
        for round_ in range(settings.rounds):
            shift = round_ % len(servers)
            for server in servers[shift:] + servers[:shift]:  # each goes first in turn
                result = load.closed_loop(server.address, raw, concurrency=settings.concurrency,
                                          seconds=settings.round_seconds)
                rates[server.name].append(result.rate)
                shares.append(result.client_share)
                failures.update({status: n for status, n in result.statuses.items() if status != 200})

        def versus(key: str, what: str, a: str, b: str, goal: str, least: float | None) -> None:
            ratios = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
            middle, low, high = median_spread(ratios)
            measured = (f"{times(middle)} ({statistics.median(rates[a]):.0f} vs "
                        f"{statistics.median(rates[b]):.0f} req/s; rounds {times(low)}–{times(high)})")
            ctx.rows[key] = Row(what, measured, goal,
                                verdict(middle >= least and not failures) if least else "-")

        versus("throughput", "home page vs a floor running Inkwell's own statements (stdlib driver, same "
               "templates, byte-identical HTML), throughput", "app", "own", "≥ 0.95×", 0.95)
        versus("throughput-fresh", "… the same with the list cache off", "app-fresh", "own",
               "(≥ 0.95×)", None)
        versus("throughput-hand", "home page vs the hand-written floor, throughput", "app", "hand", "", None)
        if failures:
            ctx.notes.append(f"Answers other than 200 during the throughput rounds: {dict(failures)}.")
        ctx.notes.append(f"The load generator used {statistics.median(shares):.0%} of one core (median of "
                         f"the rounds), {settings.concurrency} connections, one request per connection.")

        open_loop_row(ctx, app_server, raw, next(server for server in servers if server.name == "hand"))

        print(f"Checkout: {BUYERS} buyers for {settings.checkout_seconds:.0f} s, then {BUYERS} racing for "
              f"{SCARCE_STOCK} items ...", flush=True)
        bought, race = checkout(app_server, ctx.url, settings.checkout_seconds)
        errors = sum(n for status, n in (bought.statuses + race["statuses"]).items() if status >= 500)
        ctx.rows["checkout"] = Row(
            f"checkout throughput, {BUYERS} concurrent buyers",
            f"{bought.orders / bought.seconds:.1f} orders/s ({bought.orders} orders, "
            f"{bought.requests / bought.seconds:.0f} req/s, {bought.refused} refused, "
            f"{errors} server errors)",
            "no 5xx", verdict(errors == 0 and bought.orders > 0))
        oversold = race["sold"] > SCARCE_STOCK or race["left"] < 0
        ctx.rows["race"] = Row(
            f"{BUYERS} buyers racing for {SCARCE_STOCK} items",
            f"{race['placed']} placed, {race['refused']} refused, {race['errors']} errors, "
            f"stock left {race['left']}", f"exactly {SCARCE_STOCK} sold, no 5xx",
            verdict(not oversold and race["placed"] == SCARCE_STOCK and race["errors"] == 0))
    logged = (run_dir / "gunicorn-app.log").read_text(errors="replace").count("slow statement")
    if logged:
        ctx.notes.append(f"gunicorn's app logged {logged} slow statement(s): "
                         f"see {run_dir / 'gunicorn-app.log'}.")


def open_loop_row(ctx: Context, server: load.Server, raw: bytes, control: load.Server) -> None:
    """Latency at 70% of the highest rate, on a fixed schedule, in rounds: each measures the
    highest rate just before (other work on the machine changes it), then drives the app at
    70% of it. A stall of the machine shows in one round's p99, not in the median.

    The same rounds, interleaved, drive ``control`` (the hand-written floor: the bare driver
    and the templates, no framework) the same way, and the machine's own steadiness is
    measured first: where the floor misses the goal too, the tail is the machine's, not the
    app's."""
    settings = ctx.settings
    steady = load.steadiness(seconds=settings.open_loop_seconds)
    print(f"Open loop: {settings.rounds} rounds of {settings.open_loop_seconds:.0f} s at 70% of the "
          f"highest rate, the app and the hand-written floor in turn ...", flush=True)
    runs: dict[str, list[LoadResult]] = {server.name: [], control.name: []}
    for round_ in range(settings.rounds):
        for side in ((server, control) if round_ % 2 == 0 else (control, server)):
            top = load.closed_loop(side.address, raw, concurrency=settings.concurrency,
                                   seconds=settings.round_seconds).rate
            runs[side.name].append(load.open_loop(side.address, raw, rate=0.7 * top,
                                                  seconds=settings.open_loop_seconds))

    def summary(results: list[LoadResult]) -> tuple[float, str]:
        ratios = [run.percentile(99) / run.percentile(50) for run in results]
        middle, low, high = median_spread(ratios)
        typical = results[sorted(range(len(results)), key=ratios.__getitem__)[len(results) // 2]]
        return middle, (f"p99 = {middle:.1f}× p50 (rounds {low:.1f}–{high:.1f}); the median round: p50 "
                        f"{ms(typical.percentile(50))}, p99 {ms(typical.percentile(99))} at "
                        f"{typical.rate:.0f} req/s, the generator's sending lag p99 "
                        f"{ms(typical.send_lag_p99)}")

    answers: Counter[int] = Counter()
    for run in runs[server.name]:
        answers.update(run.statuses)
    middle, measured = summary(runs[server.name])
    ctx.rows["open-loop"] = Row(
        "open-loop latency at 70% of the highest rate (measured just before each round)", measured,
        "p99 ≤ 3× p50", verdict(middle <= 3 and set(answers) == {200}))
    _, control_measured = summary(runs[control.name])
    ctx.rows["open-loop-control"] = Row(
        "… the same for the hand-written floor, in the same rounds (a control: the machine's part)",
        control_measured, "(p99 ≤ 3× p50)", "-")
    ctx.notes.append(
        f"The machine's steadiness, before the open loop: one process per core doing only arithmetic "
        f"got less than 70% of its median speed in {steady.below_70:.1%} of {steady.windows} windows "
        f"of 100 ms (the slowest {steady.slowest:.0%}). A server at 70% of its highest rate queues in "
        f"every such window, whatever it runs: when they are over 1% of the time, the p99 falls in them.")
    if set(answers) != {200}:
        ctx.notes.append(f"Open loop answers: {dict(answers)}.")


#: The table's rows, in the issue's order.
ORDER = ("throughput", "throughput-fresh", "throughput-hand", "cpu", "cpu-fresh", "member", "deep",
         "past-end", "hundred", "statements", "search", "seed", "open-loop", "open-loop-control",
         "checkout", "race")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL for the data set (its schema is replaced); "
                        "default: SQLite in .bench/")
    parser.add_argument("--quick", action="store_true",
                        help=f"{data.QUICK.posts:,} posts and short rounds: proves the harness works")
    parser.add_argument("--rebuild", action="store_true", help="seed the data set again even if cached")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of the home page")
    parser.add_argument("--skip-http", action="store_true", help="in-process measurements only")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    sizes = data.QUICK if args.quick else data.FULL
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    slow = SlowStatements()
    sql_log = logging.getLogger("inkwell.sql")
    sql_log.addHandler(slow)
    sql_log.propagate = False

    cached = data.dataset(args.database_url, sizes, rebuild=args.rebuild)
    run_name = f"run-{cached.kind}{'-quick' if args.quick else ''}"
    run_dir = data.CACHE / run_name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    dataset = data.working_copy(cached, f"{run_name}/data")
    ctx = Context(args, settings, dataset.url, dataset.kind, run_dir, {}, [])
    print(f"\n## Inkwell bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: {ctx.kind}"
          f"{' (--quick)' if args.quick else ''}", flush=True)

    listed = make_app(ctx.url, run_dir / "proc-listed", lists_cached=True)  # as deployed without Redis
    fresh = make_app(ctx.url, run_dir / "proc-fresh", lists_cached=False)
    hundred = make_app(ctx.url, run_dir / "proc-100", lists_cached=False, per_page=100)
    spec, second, cookie = check_floors(ctx, listed, fresh)
    cpu_rows(ctx, spec, listed, fresh, cookie)
    query = list_rows(ctx, spec, fresh, hundred, second, cookie)
    if args.profile:
        profile(fresh, "/", None, 50, "home page, visitor, list cache off")
        profile(listed, "/", None, 200, "home page, visitor, list cached")
        profile(fresh, "/", cookie, 5, "home page, logged in")
        profile(fresh, query, None, 3, f"search {query}")
    if not args.skip_http:
        http_rows(ctx, spec)
    when = "this run" if dataset.built else "when the cached data set was built"
    ctx.rows["seed"] = Row(f"`flask seed --posts {sizes.posts:,} --users {sizes.users:,}`",
                           f"{dataset.seed_seconds:.1f} s ({when}; "
                           f"`flask db upgrade` {dataset.upgrade_seconds:.1f} s)",
                           "README states what `make bench` measures", "-")
    ctx.notes += [f"Slow statements (over SLOW_QUERY_MS) in this process: {line}" for line in slow.summary()]

    print(f"\n### {ctx.kind}: {sizes.posts:,} posts, {dataset.authors or '?'} authors, {PER_PAGE} per page; "
          f"gunicorn 2 sync workers; {settings.rounds} interleaved rounds (median, spread)")
    load_at_end = os.getloadavg()
    cores = load.process_cpu_count()
    print(f"{cores} cores, load average {load_at_start[0]:.2f} at the start, {load_at_end[0]:.2f} at the end "
          f"(the bench itself adds about 2); Python {platform.python_version()}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    if load_at_start[0] > cores / 2:
        print(f"**The machine was busy before the run began (load {load_at_start[0]:.1f} on {cores} cores): "
              f"other work took CPU from the servers; trust the ratios' spread, not single numbers.**\n")
    print("| what | measured | goal | |")
    print("|---|---|---|---|")
    for key in ORDER:
        row = ctx.rows.get(key)
        if row is not None:
            print(f"| {row.what} | {row.measured} | {row.goal} | {row.verdict} |")
    print()
    for note in ctx.notes:
        print(f"- {note}")
    print(f"\nFinished in {time.perf_counter() - started:.0f} s; logs in {run_dir}.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
