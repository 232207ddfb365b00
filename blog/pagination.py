"""Keyset ("seek") pages for lists that grow without bound.

A page is the ``per_page`` rows that follow (or precede) a cursor in the list's sort order.
The cursor is the sort key of the last (or first) row shown, so the database seeks straight
to it through the index that matches the sort: page 5,000 costs what page 1 costs, and no
page ever counts the whole table. Links say "Newer" and "Older" rather than page numbers.

The cursor travels in the ``cursor`` query argument as URL-safe base64 of a small JSON array
(direction, then the key's values). It is opaque to readers but not secret: whatever a reader
puts there is only ever a bound parameter, and anything that does not decode to values of
the key's types is a 400 with a clear message.

Old links with ``?page=N`` keep working: N = 1 is the first page; a later N is redirected to
the cursor that starts that page (found by one narrow query on the key columns alone), and a
page past the end is 404. A list may keep its length (:class:`Lengths`, an upper bound counted
once until the list changes) so that a page past the end is 404 with no query at all.

Lists in an order no index serves (search results by relevance) keep numbered pages but are
never counted either: :func:`uncounted_page` reads one row more than a page to know whether
another page follows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from flask import abort, current_app, redirect, request
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from blog.database import utcnow
from blog.database_session import MAX_PAGE
from blog.errors import ExplainedBadRequest
from blog.extensions import db

OLDER = "o"  # the rows after the cursor in sort order ("Older" on a newest-first list)
NEWER = "n"  # the rows before it

#: The query argument that carries a cursor.
CURSOR_ARG = "cursor"
#: The bound parameters of a cursor's values in a page's statement: ``cursor_0``, ``cursor_1``...
_CURSOR_PARAMETER = "cursor_"


@dataclass(frozen=True)
class Key:
    """One part of a list's sort key: an expression, its direction and how to read its value
    from a listed item (for a mapped attribute: the attribute itself)."""

    expression: ColumnElement[Any] | InstrumentedAttribute[Any]
    descending: bool = True
    read: Callable[[Any], Any] | None = None

    def value_of(self, item: Any) -> Any:
        if self.read is not None:
            return self.read(item)
        return getattr(item, str(self.expression.key))

    @property
    def python_type(self) -> type:
        return self.expression.type.python_type


@dataclass(frozen=True)
class Ordering:
    """A list's sort order as keys; the last key must make it total (an id).

    ``until``: for a list newest first whose statement stops at the present time (posts
    scheduled for later are not listed yet) with ``first key <= bindparam(until)``, the name of
    that parameter. A page going older then lowers it to the cursor's time: SQLite seeks an
    index from the first bound it finds on a column, which would otherwise be "now", and read
    every newer row before reaching the cursor (3 times page 1's cost at 100,000 posts).
    """

    keys: tuple[Key, ...]
    until: str | None

    def __init__(self, *keys: Key, until: str | None = None) -> None:
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "until", until)

    def clauses(self, reverse: bool = False) -> list[ColumnElement[Any]]:
        """ORDER BY clauses, or their mirror image (to read the rows before a cursor)."""
        return [key.expression.desc() if key.descending != reverse else key.expression.asc()
                for key in self.keys]

    def after(self, reverse: bool = False) -> ColumnElement[bool]:
        """The rows that come after the cursor in this order (before it: ``reverse``), the
        cursor's values being the bound parameters that :meth:`cursor_parameters` names."""
        bound = [bindparam(f"{_CURSOR_PARAMETER}{index}", type_=key.expression.type)
                 for index, key in enumerate(self.keys)]
        columns = [key.expression for key in self.keys]
        directions = {key.descending != reverse for key in self.keys}
        if len(directions) == 1:
            # One direction: a row-value comparison, which both databases answer with one
            # range scan of an index on the same columns.
            row, cursor = tuple_(*columns), tuple_(*bound)
            return row < cursor if directions.pop() else row > cursor
        # Mixed directions: (a after x) OR (a = x AND b after y) OR ...
        terms = []
        for index, key in enumerate(self.keys):
            column, value = columns[index], bound[index]
            step = column < value if key.descending != reverse else column > value
            terms.append(and_(*(columns[i] == bound[i] for i in range(index)), step))
        return or_(*terms)

    def cursor_parameters(self, values: Sequence[Any]) -> dict[str, Any]:
        """The bound parameters of :meth:`after` for a cursor's ``values``."""
        return {f"{_CURSOR_PARAMETER}{index}": value for index, value in enumerate(values)}

    def encode(self, direction: str, item: Any) -> str:
        """The cursor that continues the list from ``item`` in ``direction``."""
        return self.encode_values(direction, [key.value_of(item) for key in self.keys])

    def encode_values(self, direction: str, values: Sequence[Any]) -> str:
        """The cursor that continues the list from a row whose key is ``values``."""
        raw = json.dumps([direction, *map(_to_json, values)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, cursor: str) -> tuple[str, list[Any]]:
        """(direction, key values) of ``cursor``; 400 for anything this list did not make."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            direction, *values = json.loads(raw)
            if direction not in (OLDER, NEWER) or len(values) != len(self.keys):
                raise ValueError(cursor)
            return direction, [_from_json(value, key.python_type)
                               for key, value in zip(self.keys, values, strict=True)]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ExplainedBadRequest("That page link is damaged. Start again from the first page.") from None


def _to_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _from_json(value: Any, python_type: type) -> Any:
    if python_type is datetime:
        if not isinstance(value, str):
            raise TypeError(value)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if python_type is bool:
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if python_type is int:
        # bool is an int to Python but never a valid id; 2**63 and up would overflow a BIGINT.
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
            raise TypeError(value)
        return value
    if not isinstance(value, python_type):
        raise TypeError(value)
    return value


@dataclass(frozen=True)
class KeysetPage:
    """One page of a keyset list: its items and the cursors of the pages on either side
    (None at either end)."""

    items: list[Any]
    newer: str | None
    older: str | None

    @property
    def has_prev(self) -> bool:
        return self.newer is not None

    @property
    def has_next(self) -> bool:
        return self.older is not None


#: How a page's statement becomes its items: ``fetch(statement, parameters)``.
Fetch = Callable[[Select[Any], dict[str, Any]], list[Any]]


class Lengths(Protocol):
    """Where lists' lengths are kept between requests, each under a key that names the list,
    until the next write that could change any of them (blog.posts.fragments keeps those of
    the post lists)."""

    def length(self, key: str, count: Callable[[], int]) -> int:
        """The length kept under ``key``, or else ``count()``, kept there until the lists
        next change (a write committed while it counts leaves it with the lists it changed)."""


#: What a list's ``until`` parameter is bound to when it is counted: a list cut at "now"
#: grows as time passes with no write (a scheduled post falls due), so its length is counted
#: as if every scheduled post were due, an upper bound that stays true until the next write.
_END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)


def keyset_page(stmt: Select[Any], ordering: Ordering, per_page_setting: str,
                fetch: Fetch | None = None, lengths: Lengths | None = None) -> KeysetPage:
    """The page of ``stmt`` (sorted by ``ordering``, whatever order it had) that the request's
    ``cursor`` points at, sized by the setting named ``per_page_setting``. Two kinds of old
    link are answered without a page: ``?page=N`` past the first is redirected to its cursor,
    and past the end it is 404 (both end the request). ``fetch`` runs the page's statement
    (default: the mapped objects it selects). With ``lengths``, the list's length is kept
    there once an old link asked for it, and a later one past the end is 404 with no query."""
    fetch = fetch or _rows
    per_page: int = current_app.config[per_page_setting]
    cursor = request.args.get(CURSOR_ARG)
    if not cursor:
        _redirect_numbered_page(stmt, ordering, per_page, lengths)
        rows = fetch(_page_statement(stmt, ordering, per_page, None), {})
        return _page(ordering, rows, per_page, came_from=None)
    direction, values = ordering.decode(cursor)
    backwards = direction == NEWER
    params = ordering.cursor_parameters(values)
    if ordering.until is not None and not backwards:
        # Rows before the cursor are no later than its time, so "no later than now" and "no
        # later than min(now, cursor)" select the same rows; only the second seeks to the cursor.
        params[ordering.until] = min(utcnow(), values[0])
    rows = fetch(_page_statement(stmt, ordering, per_page, direction), params)
    if backwards:
        more_newer = len(rows) > per_page
        rows = rows[:per_page][::-1]
        newer = ordering.encode(NEWER, rows[0]) if rows and more_newer else None
        older = ordering.encode(OLDER, rows[-1]) if rows else None
        return KeysetPage(rows, newer, older)
    return _page(ordering, rows, per_page, came_from=OLDER)


#: The page statements made from each list statement: (ordering, per page, direction) ->
#: (the ordering, the statement). A list statement built once per process (the home page's)
#: thus gets its pages' statements built once too, and SQLAlchemy computes each one's cache
#: key once instead of on every request (together about 0.3 ms of a page). A statement made
#: for one request (a tag's list) takes its entries with it when it is collected.
_PAGE_STATEMENTS: weakref.WeakKeyDictionary[Select[Any], dict[tuple[int, int, str | None],
                                                           tuple[Ordering, Select[Any]]]] = (
    weakref.WeakKeyDictionary())


def _page_statement(stmt: Select[Any], ordering: Ordering, per_page: int,
                    direction: str | None) -> Select[Any]:
    """``stmt`` as the statement of a page of ``per_page`` (plus one, to tell whether another
    follows): the first page (``direction`` None), or the rows after (OLDER) or before
    (NEWER) the cursor whose values :meth:`Ordering.cursor_parameters` binds."""
    built = _PAGE_STATEMENTS.get(stmt)
    if built is None:
        built = _PAGE_STATEMENTS.setdefault(stmt, {})
    key = (id(ordering), per_page, direction)
    found = built.get(key)
    # The ordering is kept with its statement: an equal id of a collected ordering is not it.
    if found is not None and found[0] is ordering:
        return found[1]
    backwards = direction == NEWER
    page = stmt.order_by(None)
    if direction is not None:
        page = page.where(ordering.after(reverse=backwards))
    page = page.order_by(*ordering.clauses(reverse=backwards)).limit(per_page + 1)
    built[key] = (ordering, page)
    return page


def _rows(stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
    return list(db.session.scalars(stmt, params).unique())


def _page(ordering: Ordering, rows: list[Any], per_page: int, came_from: str | None) -> KeysetPage:
    more = len(rows) > per_page
    rows = rows[:per_page]
    newer = ordering.encode(NEWER, rows[0]) if rows and came_from else None
    older = ordering.encode(OLDER, rows[-1]) if rows and more else None
    return KeysetPage(rows, newer, older)


def _redirect_numbered_page(stmt: Select[Any], ordering: Ordering, per_page: int,
                            lengths: Lengths | None) -> None:
    """Answer an old ``?page=N`` link: N > 1 redirects to the cursor after the last row of
    page N - 1, read with the key columns alone (an index-only walk, no rows loaded). Past
    the list's kept length (``lengths``; counted first if it is not kept) it is 404 at once."""
    number = request.args.get("page", 1, type=int)
    if number == 1:
        return
    if not 1 <= number <= MAX_PAGE:
        abort(404)
    stmt = stmt.order_by(None)
    if lengths is not None and _length_at_most(stmt, ordering, lengths) <= (number - 1) * per_page:
        abort(404)
    keys = stmt.with_only_columns(*(key.expression for key in ordering.keys), maintain_column_froms=True)
    # The last row of page N - 1 (the cursor) and the first of page N (that there is one).
    rows = db.session.execute(
        keys.order_by(*ordering.clauses()).offset((number - 1) * per_page - 1).limit(2)).all()
    if len(rows) < 2:
        abort(404)
    cursor = ordering.encode_values(OLDER, tuple(rows[0]))
    args = {name: value for name, value in request.args.items(multi=True) if name != "page"}
    args[CURSOR_ARG] = cursor
    # 302, not 301: where page N starts moves as posts are published.
    abort(redirect(f"{request.path}?{urlencode(args)}"))


def _length_at_most(stmt: Select[Any], ordering: Ordering, lengths: Lengths) -> int:
    """How many rows ``stmt`` (unordered) has at most: kept in ``lengths``, or counted now
    (every scheduled row counted as due: see :data:`_END_OF_TIME`) and kept there."""
    counted = stmt.with_only_columns(func.count(), maintain_column_froms=True)
    params = {ordering.until: _END_OF_TIME} if ordering.until is not None else {}
    # The count's SQL and the values bound into it (a tag's id, the viewer's id) name the list:
    # compiling costs a fraction of a millisecond, and only old numbered links pay it.
    compiled = counted.compile(dialect=db.engine.dialect)
    named = f"{compiled.string}\x00{sorted(compiled.construct_params(params).items())!r}"
    key = hashlib.sha256(named.encode()).hexdigest()
    return lengths.length(key, lambda: int(db.session.scalar(counted, params) or 0))


@dataclass(frozen=True)
class UncountedPage:
    """A numbered page that knows whether a next page exists but not how many there are:
    counting every match costs more than the page itself (on SQLite, a count over a
    full-text join took 13 s at 100,000 posts where the page took 0.37 s)."""

    items: list[Any]
    page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None


def page_number() -> int:
    """The request's ``?page=``: text that is not a number means 1; zero, negative or
    absurdly large numbers are 404."""
    number: int = request.args.get("page", 1, type=int)
    if not 1 <= number <= MAX_PAGE:
        abort(404)
    return number


def uncounted_page(stmt: Select[Any], per_page_setting: str, fetch: Fetch | None = None) -> UncountedPage:
    """The request's ``?page=`` of ``stmt`` in its own order, sized by the setting named
    ``per_page_setting``, in one query and without a count (``fetch``: as for
    :func:`keyset_page`). Text that is not a number means page 1; zero, negative, absurdly
    large or past-the-end pages are 404."""
    fetch = fetch or _rows
    per_page: int = current_app.config[per_page_setting]
    number = page_number()
    rows = fetch(stmt.offset((number - 1) * per_page).limit(per_page + 1), {})
    return numbered_page(rows, number, per_page)


def numbered_page(rows: list[Any], number: int, per_page: int) -> UncountedPage:
    """Page ``number`` from its rows, fetched with one more than ``per_page`` to tell whether
    a next page exists; a page after the first with no rows is past the end: 404."""
    if not rows and number > 1:
        abort(404)
    return UncountedPage(rows[:per_page], number, has_next=len(rows) > per_page)
