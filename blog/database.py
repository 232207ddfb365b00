"""The database layer every domain builds on. It imports nothing of Inkwell, so that
:mod:`blog.extensions` can build ``db`` on ``Base``; helpers that use the session
(``transaction()``, ``paginate()``, ``unique_slug()``) live one floor up, in
:mod:`blog.database_session`.

- ``Base``: the declarative base, with a naming convention so constraints get the same,
  predictable names on SQLite and PostgreSQL (migrations can then refer to them by name).
- ``UTCDateTime`` and ``TimestampMixin``: timezone-aware UTC timestamps on both databases.
- ``Money``: amounts as ``Decimal`` in Python, integer minor units (cents) in the database.
- ``escape_like()``, ``contains_pattern()``: LIKE patterns that take user text literally.
- Engine set-up: SQLite pragmas and ``BEGIN IMMEDIATE`` for write transactions, statement
  counting per request (and for tests), and a slow-statement warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from flask import Flask
from sqlalchemy import BigInteger, CheckConstraint, DateTime, MetaData, Table, Text, event
from sqlalchemy.engine import Connection, CursorResult, Engine, Result
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm import registry as Registry
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("inkwell.sql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC and given their zone back when read. Naive datetimes are refused on the way in: a
    naive value is almost always local time by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        # What keyset cursors decode a stored time as (TypeDecorator itself answers "object").
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use blog.database.utcnow()")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: The smallest amount of money: every amount is a whole number of these.
CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """An amount of money: ``Decimal`` in Python, a whole number of cents in the database.

    Integers make sums exact in SQL on every database (no float, no per-database NUMERIC
    rounding), and ``Decimal`` keeps them exact in Python. An amount with fractions of a
    cent, or a float, is refused rather than silently rounded: rounding is a business rule
    and belongs where it is decided (see ``blog.shop.pricing``).

    Arithmetic in SQL keeps the type, so ``SUM(price)`` and ``price * quantity`` come back
    as ``Decimal`` too.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float) or not isinstance(value, (Decimal, int)):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
        amount = Decimal(value)
        if not amount.is_finite() or amount != amount.quantize(CENT):
            raise ValueError(f"{value} is not a whole number of cents")
        return int(amount.scaleb(2))

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-2).quantize(CENT)


class Base(DeclarativeBase):
    """Declarative base for every model (used as Flask-SQLAlchemy's ``model_class``)."""

    registry = Registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), Decimal: Money()},
    )


class TimestampMixin:
    """``created_at`` and ``updated_at``, set in Python per row (never once at import)."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- SQLite write transactions ---------------------------------------------------------------

#: True while a service transaction is starting: the SQLite "begin" hook then takes the write
#: lock at once (BEGIN IMMEDIATE) instead of on the first write. Set by
#: :func:`blog.database_session.transaction`.
begin_immediate: ContextVar[bool] = ContextVar("inkwell_begin_immediate", default=False)


def core_table(model: type[DeclarativeBase]) -> Table:
    """The Core table a mapped class is stored in, for bulk statements (seed, CSV import)."""
    # Declarative types ``__table__`` as any FromClause; every model here maps one Table.
    return cast(Table, model.__table__)


def status_check(values: tuple[str, ...], name: str = "status_known") -> CheckConstraint:
    """``CHECK (status IN ('a', 'b', ...))``: a status column holds only the states its class
    lists (every state machine's table has one)."""
    return CheckConstraint(f"status IN ({', '.join(repr(value) for value in values)})", name=name)


def affected_rows(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched: the conditional updates that take stock or
    move an order read it to learn whether they won."""
    return cast(CursorResult[Any], result).rowcount


# --- LIKE patterns ------------------------------------------------------------------------


class joined_text(FunctionElement[str]):
    """``joined_text(column, separator)``: an aggregate of a column's values as one string, in
    no particular order: ``group_concat`` on SQLite, ``string_agg`` on PostgreSQL (SQLite
    before 3.44 knows no ``string_agg``)."""

    type = Text()
    inherit_cache = True
    name = "joined_text"


@compiles(joined_text)
def _group_concat(element: joined_text, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)})"


@compiles(joined_text, "postgresql")
def _string_agg(element: joined_text, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)})"


def escape_like(text: str) -> str:
    """Make ``%``, ``_`` and the escape character itself literal in a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` (trimmed) anywhere, its wildcards taken literally;
    use with ``escape="\\"``."""
    return f"%{escape_like(text.strip())}%"


# --- statement counting -------------------------------------------------------------------


@dataclass
class StatementCounter:
    """Counts the SQL statements run while it is active (transaction control excluded)."""

    count: int = 0
    statements: list[str] = field(default_factory=list)


_active_counters: ContextVar[tuple[StatementCounter, ...]] = ContextVar(
    "inkwell_statement_counters", default=()
)

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def start_counting() -> tuple[StatementCounter, Any]:
    """Begin counting without a ``with`` block (for request hooks); pass the token to stop."""
    counter = StatementCounter()
    return counter, _active_counters.set(_active_counters.get() + (counter,))


def stop_counting(token: Any) -> None:
    """End a count begun with :func:`start_counting`."""
    _active_counters.reset(token)


@contextmanager
def count_statements() -> Iterator[StatementCounter]:
    """Count the statements executed inside the ``with`` block (used by tests)."""
    counter, token = start_counting()
    try:
        yield counter
    finally:
        stop_counting(token)


def _mask(parameters: Any, executemany: bool) -> str:
    """Describe parameters without their values: they may hold passwords, emails, addresses."""
    if executemany:
        return f"<{len(parameters)} parameter sets>"
    if isinstance(parameters, dict):
        return "{" + ", ".join(f"{key}: ?" for key in parameters) + "}"
    if isinstance(parameters, (list, tuple)):
        return "(" + ", ".join("?" for _ in parameters) + ")"
    return "?"


def _instrument(engine: Engine, slow_ms: float) -> None:
    # The start time rides on the statement's execution context, which dies with it, so a
    # statement that fails leaves nothing behind on the pooled connection.
    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, parameters: Any,
                context: Any, executemany: bool) -> None:
        context._inkwell_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, parameters: Any,
               context: Any, executemany: bool) -> None:
        elapsed_ms = (time.perf_counter() - context._inkwell_started) * 1000
        if not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            for counter in _active_counters.get():
                counter.count += 1
                counter.statements.append(statement)
        if elapsed_ms > slow_ms:
            log.warning("slow statement (%.0f ms): %s parameters=%s",
                        elapsed_ms, " ".join(statement.split()), _mask(parameters, executemany))


# --- SQLite ---------------------------------------------------------------------------------


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would begin lazily
        # and never immediately; the "begin" hook below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: transaction control is not a statement worth counting.
        verb = "BEGIN IMMEDIATE" if begin_immediate.get() else "BEGIN"
        conn.connection.driver_connection.execute(verb)  # type: ignore[union-attr]


def init_database(app: Flask, engine: Engine) -> None:
    """Attach Inkwell's engine hooks: SQLite pragmas and immediate writes, instrumentation."""
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    _instrument(engine, float(app.config["SLOW_QUERY_MS"]))
