"""The floors the home page is measured against: the same page made with as little as possible
between the database and Inkwell's own templates.

Two floors, each a plain WSGI callable (``gunicorn 'bench.floor:own_app()'``) and, for the
in-process CPU comparison, a ``home(query_string, cookie)`` method:

- :class:`OwnFloor` runs *Inkwell's own statements* for the visitor's home page, the exact
  SQL text the app sent (captured by ``bench.run`` from a real request), through the driver
  directly: ``sqlite3`` from the standard library, or ``psycopg`` with no SQLAlchemy. What is
  left between it and the app is everything that is not SQL: the ORM, Flask, its extensions
  and hooks.
- :class:`HandFloor` runs hand-written minimal SQL: one keyset query that brings the author
  and the counts along, one for the tags (and, logged in, one for the member behind the
  session cookie). It reads only the columns the page shows.

Both render ``templates/`` with plain Jinja2 (autoescaping on, as Flask does for ``.html``)
and give the templates the few globals they use, each the smallest thing that produces the
same bytes. ``bench.run`` checks that both floors produce the app's HTML byte for byte
(CSRF tokens masked) before it measures anything, and stops if they do not: a floor that
draws less than the app would flatter it.

Neither floor imports Inkwell (of Flask, only its session serializer, to read the cookie).
What they need to know (the database, the site's settings, URL rules, the captured
statements) comes in a JSON *spec* that ``bench.run`` writes, named by ``BENCH_FLOOR_SPEC``.
The site's settings are constant for a run, so the floors hold them in memory, as the app
holds them in its cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

from flask.json.tag import TaggedJSONSerializer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

#: Inkwell's sort key of every public list, newest first, and what its cursors carry.
OLDER, NEWER = "o", "n"
#: Roles that may write (the "Write" link) and that see every scheduled post.
WRITER_ROLES = frozenset({"author", "editor", "admin"})
EDITOR_ROLES = frozenset({"editor", "admin"})
#: Query arguments kept in a canonical link (blog.urls.CANONICAL_ARGS).
CANONICAL_ARGS = ("page", "q", "category", "sort", "status")
#: Between the tag names of a post in one column (blog.posts.listing).
TAG_SEPARATOR = "\x1f"
#: How SQLAlchemy stores a UTC time in SQLite (naive, always with microseconds).
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


# --- the spec ---------------------------------------------------------------------------------


@dataclass
class Spec:
    """What a floor knows of the site; JSON-serializable (``bench.run`` writes it)."""

    database_url: str
    templates: str
    site_url: str
    timezone: str
    per_page: int
    secret_key: str
    session_cookie: str
    session_max_age: int
    #: title, tagline, description, footer; social_links [[label, url]]; nav_pages and
    #: footer_pages [[slug, title]].
    site: dict[str, Any]
    #: endpoint -> URL rule ("/posts/<slug>"), from the app's URL map.
    routes: dict[str, str]
    #: The statements of the visitor's home page (see :class:`OwnFloor`); None: no own floor.
    own: dict[str, Any] | None = None

    def save(self, path: str) -> None:
        with open(path, "w") as out:
            json.dump(self.__dict__, out, indent=1)

    @classmethod
    def load(cls, path: str) -> Spec:
        with open(path) as source:
            return cls(**json.load(source))


# --- the database -----------------------------------------------------------------------------


class Database:
    """One connection through the driver itself, in autocommit mode (each read its own
    transaction): ``sqlite3`` for a ``sqlite:///`` URL, ``psycopg`` for PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.connection: Any
        if self.sqlite:
            self.connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None,
                                              check_same_thread=False)
        else:
            import psycopg

            self.connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1),
                                              autocommit=True)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple[list[str], list[Any]]:
        """(column names, rows) of one statement."""
        cursor = self.connection.execute(sql, params)
        rows = cursor.fetchall()
        return [column[0] for column in cursor.description], rows

    def sql(self, text: str) -> str:
        """Hand-written SQL with ``%s`` placeholders, in this driver's style."""
        return text.replace("%s", "?") if self.sqlite else text

    def now_param(self, now: datetime) -> Any:
        """A UTC time as the app binds it: naive text on SQLite, aware on PostgreSQL."""
        return now.strftime(SQLITE_TIME) if self.sqlite else now

    def read_time(self, value: Any) -> datetime:
        """A stored time as the app reads it: aware, in UTC (a listed post has one)."""
        if isinstance(value, str):  # SQLite
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def close(self) -> None:
        self.connection.close()


# --- what the templates are given ------------------------------------------------------------


class Args:
    """The request's query arguments, as much of a MultiDict as the templates use."""

    def __init__(self, query_string: str) -> None:
        self.pairs = parse_qsl(query_string, keep_blank_values=True)

    def get(self, name: str, default: Any = None) -> Any:
        return next((value for key, value in self.pairs if key == name), default)

    def items(self, multi: bool = False) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)


@dataclass
class Request:
    path: str
    args: Args
    endpoint: str = "blog.index"
    view_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    """A keyset page (the template asks ``page.pages is defined``, so this has none)."""

    items: list[Any]
    newer: str | None
    older: str | None


@dataclass(slots=True)
class Item:
    """A post as a list shows it."""

    id: int
    title: str
    slug: str
    excerpt: str
    published: Any  # 1 or True: the templates only ask whether it is
    published_at: datetime
    members_only: Any
    cover: str | None
    author: Any
    comment_count: int
    like_count: int
    liked_by_viewer: bool
    tags: list[Any]


def cursor_for(direction: str, item: Item) -> str:
    """The cursor that continues the list from ``item`` (blog.pagination's encoding)."""
    raw = json.dumps([direction, item.published_at.isoformat(), item.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, datetime, int]:
    direction, moment, post_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return direction, datetime.fromisoformat(moment), int(post_id)


class Viewer:
    """The logged-in member, as base.html and the lists ask about them."""

    is_authenticated = True

    def __init__(self, user_id: int, username: str, roles: set[str]) -> None:
        self.id = user_id
        self.username = username
        self.roles = roles
        self.is_admin = "admin" in roles


ANONYMOUS = SimpleNamespace(is_authenticated=False)


# --- the common part: templates, URLs, sessions ----------------------------------------------


class Floor:
    """Renders the home page from items; the subclasses fetch the items."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.db = Database(spec.database_url)
        self.zone = ZoneInfo(spec.timezone)
        self.site = SimpleNamespace(
            title=spec.site["title"], tagline=spec.site["tagline"], description=spec.site["description"],
            footer=spec.site["footer"],
            social_links=[SimpleNamespace(label=label, url=url) for label, url in spec.site["social_links"]],
            nav_pages=[SimpleNamespace(slug=slug, title=title) for slug, title in spec.site["nav_pages"]],
            footer_pages=[SimpleNamespace(slug=slug, title=title)
                          for slug, title in spec.site["footer_pages"]])
        self.env = Environment(loader=FileSystemLoader(spec.templates), autoescape=True, auto_reload=False)
        self.env.filters["site_time"] = self._site_time
        self.env.globals.update(url_for=self._url_for, path_to=self._url_for, stored_image=_stored_image,
                                site=self.site)
        self.index = self.env.get_template("blog/index.html")
        # The app renders the list on its own (blog/_post_list.html, so a visitor's copy can be
        # cached whole) and puts it into index.html; older versions rendered both at once.
        split = "blog/_post_list.html" in self.env.list_templates()
        self.post_list = self.env.get_template("blog/_post_list.html") if split else None
        self.routes = {endpoint: re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)
                       for endpoint, rule in spec.routes.items()}
        self.sessions = URLSafeTimedSerializer(
            spec.secret_key, salt="cookie-session", serializer=TaggedJSONSerializer(),
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1})
        self.csrf_tokens = URLSafeTimedSerializer(spec.secret_key, salt="wtf-csrf-token")

    # template helpers

    def _url_for(self, endpoint: str, **values: Any) -> str:
        # Quoted as werkzeug's converters quote a path segment (slashes kept).
        return self.routes[endpoint].format(**{name: quote(str(value), safe="!$&'()*+,/:;=@")
                                               for name, value in values.items()})

    def _site_time(self, moment: datetime | None, format: str = "%-d %B %Y, %H:%M %Z") -> str:
        return moment.astimezone(self.zone).strftime(format) if moment is not None else ""

    def _canonical(self, request: Request) -> Callable[[], str]:
        def canonical_url() -> str:
            values = [(name, request.args.get(name)) for name in CANONICAL_ARGS
                      if request.args.get(name) and not (name == "page" and request.args.get(name) == "1")]
            return self.spec.site_url + request.path + (f"?{urlencode(values)}" if values else "")
        return canonical_url

    # the session

    def session_of(self, cookie: str | None) -> dict[str, Any]:
        """The Flask session in the request's cookie, checked as Flask checks it."""
        if not cookie:
            return {}
        jar = SimpleCookie(cookie)
        morsel = jar.get(self.spec.session_cookie)
        if morsel is None:
            return {}
        try:
            session: dict[str, Any] = self.sessions.loads(morsel.value, max_age=self.spec.session_max_age)
            return session
        except BadSignature:
            return {}

    def viewer_of(self, session: dict[str, Any]) -> Viewer | None:
        """The member a session's login token names (one statement), as Inkwell's loader."""
        token = session.get("_user_id")
        if not token:
            return None
        token_hash = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        true = "1" if self.db.sqlite else "true"
        _, rows = self.db.query(self.db.sql(
            "SELECT u.id, u.username, r.name FROM user_sessions s JOIN users u ON u.id = s.user_id "
            "LEFT JOIN user_roles ur ON ur.user_id = u.id LEFT JOIN roles r ON r.id = ur.role_id "
            f"WHERE s.token_hash = %s AND s.expires_at > %s AND u.active = {true}"),
            (token_hash, self.db.now_param(datetime.now(UTC))))
        if not rows:
            return None
        return Viewer(rows[0][0], rows[0][1], {row[2] for row in rows if row[2]})

    # rendering

    def render(self, items: list[Item], newer: str | None, older: str | None, request: Request,
               viewer: Viewer | None, session: dict[str, Any]) -> str:
        now = datetime.now(UTC)
        # Globals, not context: macros imported by a template (macros/pagination.html asks for
        # ``request``, macros/posts.html for ``scheduled``) see only the globals. Flask's
        # are proxies to the current request; here they are set for each page, which is as
        # safe, since a floor draws one page at a time (a sync worker, or this process).
        self.env.globals.update({
            "request": request, "current_user": viewer or ANONYMOUS,
            "canonical_url": self._canonical(request),
            "may_write": lambda: bool(viewer and viewer.roles & WRITER_ROLES),
            "scheduled": lambda post: bool(post.published and post.published_at and post.published_at > now),
            "get_flashed_messages": lambda with_categories=False: [
                flash if with_categories else flash[1] for flash in session.get("_flashes", ())],
        })
        context: dict[str, Any] = {}
        if viewer is not None:
            # Flask-WTF's token: the session's secret, signed and timestamped for this page.
            token = self.csrf_tokens.dumps(session.get("csrf_token", ""))
            self.env.globals["csrf_token"] = lambda: token
        page = Page(items, newer, older)
        if self.post_list is None:
            return self.index.render(page=page, **context)
        posts = Markup(self.post_list.render(page=page, endpoint=request.endpoint,
                                             empty="Nothing has been published yet.", **context))
        return self.index.render(posts=posts, **context)

    def home(self, query_string: str = "", cookie: str | None = None) -> str:
        raise NotImplementedError

    def close(self) -> None:
        self.db.close()


def _stored_image(name: str | None, *, thumb: bool = False) -> Any:
    if name:
        # The seeded posts have no covers; one with a cover would need the image's size.
        raise NotImplementedError("the floors draw no covers")
    return None


# --- floor (a): Inkwell's own statements -----------------------------------------------------


class OwnFloor(Floor):
    """The visitor's home page from the statements Inkwell itself ran for it.

    ``spec.own`` holds them as the app sent them to the driver: ``statements``, each
    ``{"sql": ..., "params": [...] or {...}}``, where a parameter is ``{"value": v}``, or
    ``{"now": true}`` (the moment of the request, as Inkwell binds it), or ``{"id": k}`` (the
    id of the k-th row of the page's statement, for a statement that loads the tags);
    ``page`` and ``tags`` are the indexes of those two statements (``tags`` None: the page's
    statement has a column of each post's tag names, ``columns["tag_names"]``, joined by
    ``TAG_SEPARATOR`` in no order); ``columns`` names the page statement's column for each
    attribute a list item shows. Any other statement (one whose result the page does not
    show) is run too, and its rows read and dropped.
    """

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        if spec.own is None:
            raise ValueError("the spec has no captured statements")
        self.own = spec.own
        self.columns: dict[str, str] = self.own["columns"]

    def _params(self, template: Any, now: Any, ids: list[int]) -> Any:
        def one(parameter: dict[str, Any]) -> Any:
            if "now" in parameter:
                return now
            if "id" in parameter:
                return ids[parameter["id"]]
            if "datetime" in parameter:
                return datetime.fromisoformat(parameter["datetime"])
            return parameter["value"]

        if isinstance(template, dict):
            return {name: one(parameter) for name, parameter in template.items()}
        return [one(parameter) for parameter in template]

    def home(self, query_string: str = "", cookie: str | None = None) -> str:
        if query_string:
            raise ValueError("the own floor serves the first page only")
        now = self.db.now_param(datetime.now(UTC))
        ids: list[int] = []
        items: list[Item] = []
        tags: list[tuple[int, str]] = []
        for index, statement in enumerate(self.own["statements"]):
            names, rows = self.db.query(statement["sql"], self._params(statement["params"], now, ids))
            if index == self.own["page"]:
                items = self._items(names, rows)
                ids = [item.id for item in items]
            elif index == self.own["tags"]:
                post_id, name = names.index("post_id"), names.index("name")
                tags = [(row[post_id], row[name]) for row in rows]
        per_page = self.spec.per_page
        by_id = {item.id: item for item in items}
        for tagged, tag in tags:  # in the app's order (by name)
            by_id[tagged].tags.append(SimpleNamespace(name=tag))
        shown = items[:per_page]
        older = cursor_for(OLDER, shown[-1]) if len(items) > per_page else None
        return self.render(shown, None, older, Request("/", Args("")), None, {})

    def _items(self, names: list[str], rows: list[Any]) -> list[Item]:
        at = {attribute: names.index(column) for attribute, column in self.columns.items()}
        read_time = self.db.read_time
        liked = at.get("liked_by_viewer")
        joined = at.get("tag_names")  # else a statement of their own brings the tags

        def tags_of(row: Any) -> list[Any]:
            names = (row[joined] if joined is not None else None) or ""
            return [SimpleNamespace(name=name) for name in sorted(names.split(TAG_SEPARATOR)) if name]

        return [Item(id=row[at["id"]], title=row[at["title"]], slug=row[at["slug"]],
                     excerpt=row[at["excerpt"]], published=row[at["published"]],
                     published_at=read_time(row[at["published_at"]]), members_only=row[at["members_only"]],
                     cover=row[at["cover"]], author=SimpleNamespace(username=row[at["username"]]),
                     comment_count=row[at["comment_count"]], like_count=row[at["like_count"]],
                     liked_by_viewer=bool(row[liked]) if liked is not None else False, tags=tags_of(row))
                for row in rows]


# --- floor (b): hand-written SQL --------------------------------------------------------------


class HandFloor(Floor):
    """The home page from the least SQL that draws it: one keyset query with the author and
    the counts (and, for a member, whether they liked each post), one for the tags; for a
    member, one more for the member behind the session cookie."""

    def home(self, query_string: str = "", cookie: str | None = None) -> str:
        session = self.session_of(cookie)
        viewer = self.viewer_of(session)
        request = Request("/", Args(query_string))
        cursor = request.args.get("cursor")
        db = self.db
        true = "1" if db.sqlite else "true"
        now = db.now_param(datetime.now(UTC))
        params: list[Any] = []
        liked = "0"
        if viewer is not None:
            liked = "EXISTS (SELECT 1 FROM likes k WHERE k.post_id = p.id AND k.user_id = %s)"
            params.append(viewer.id)
        # Who sees what (blog.posts.services._listed): published and due; a member also their
        # own scheduled posts; an editor every published post.
        if viewer is not None and viewer.roles & EDITOR_ROLES:
            where = f"p.published = {true}"
        elif viewer is not None:
            where = f"p.published = {true} AND (p.published_at <= %s OR p.author_id = %s)"
            params += [now, viewer.id]
        else:
            where = f"p.published = {true} AND p.published_at <= %s"
            params.append(now)
        backwards = False
        if cursor:
            direction, moment, post_id = decode_cursor(cursor)
            backwards = direction == NEWER
            where += f" AND (p.published_at, p.id) {'>' if backwards else '<'} (%s, %s)"
            params += [db.now_param(moment.astimezone(UTC)), post_id]
        order = "ASC" if backwards else "DESC"
        _, rows = db.query(db.sql(
            "SELECT p.id, p.title, p.slug, p.excerpt, p.published, p.published_at, p.members_only, p.cover, "
            "u.username, (SELECT count(*) FROM comments c WHERE c.post_id = p.id), "
            f"(SELECT count(*) FROM likes l WHERE l.post_id = p.id), {liked} "
            f"FROM posts p JOIN users u ON u.id = p.author_id WHERE {where} "
            f"ORDER BY p.published_at {order}, p.id {order} LIMIT %s"), [*params, self.spec.per_page + 1])
        read_time = db.read_time
        items = [Item(id=row[0], title=row[1], slug=row[2], excerpt=row[3], published=row[4],
                      published_at=read_time(row[5]), members_only=row[6], cover=row[7],
                      author=SimpleNamespace(username=row[8]), comment_count=row[9], like_count=row[10],
                      liked_by_viewer=bool(row[11]), tags=[]) for row in rows]
        more = len(items) > self.spec.per_page
        items = items[:self.spec.per_page]
        if backwards:
            items.reverse()
        if items:
            by_id = {item.id: item for item in items}
            marks = ", ".join(["%s"] * len(items))
            _, tags = db.query(db.sql(f"SELECT pt.post_id, t.name FROM post_tags pt JOIN tags t "
                                      f"ON t.id = pt.tag_id WHERE pt.post_id IN ({marks}) ORDER BY t.name"),
                               list(by_id))
            for post_id, name in tags:
                by_id[post_id].tags.append(SimpleNamespace(name=name))
        if backwards:
            newer = cursor_for(NEWER, items[0]) if items and more else None
            older = cursor_for(OLDER, items[-1]) if items else None
        else:
            newer = cursor_for(NEWER, items[0]) if items and cursor else None
            older = cursor_for(OLDER, items[-1]) if items and more else None
        return self.render(items, newer, older, request, viewer, session)


# --- as WSGI applications (gunicorn) ----------------------------------------------------------


def _wsgi(floor: Floor) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/":
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        body = floor.home(environ.get("QUERY_STRING", ""), environ.get("HTTP_COOKIE")).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return application


def own_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """``gunicorn 'bench.floor:own_app()'``, with ``BENCH_FLOOR_SPEC`` naming the spec."""
    return _wsgi(OwnFloor(Spec.load(os.environ["BENCH_FLOOR_SPEC"])))


def hand_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """``gunicorn 'bench.floor:hand_app()'``, with ``BENCH_FLOOR_SPEC`` naming the spec."""
    return _wsgi(HandFloor(Spec.load(os.environ["BENCH_FLOOR_SPEC"])))
