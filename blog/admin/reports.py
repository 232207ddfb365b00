"""The dashboard's figures. Each is one aggregate query (GROUP BY, SUM, COUNT) run by the
database, never a Python loop over rows, and gives the same answer on SQLite and PostgreSQL.

Revenue is money: the payments received each UTC day (at their amount: the order's total after
discount, with shipping and tax) less the refunds given back that day. Orders placed but not
paid, and orders cancelled unpaid, count nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Date, func, literal, select, type_coerce, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from blog.accounts.models import User
from blog.database import Money, utcnow
from blog.extensions import db
from blog.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from blog.posts.models import Comment, Post
from blog.shop.models import Order, OrderItem, OrderStatus, Product, Variant
from blog.shop.pricing import ZERO


class utc_date(GenericFunction[date]):
    """The UTC calendar day of a timestamp: ``date(ts)`` on SQLite, which stores UTC, and
    ``date(ts AT TIME ZONE 'UTC')`` on PostgreSQL, whose session time zone may be anything."""

    type = Date()
    inherit_cache = True


@compiles(utc_date, "postgresql")
def _utc_date_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"date(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC')"


@compiles(utc_date)
def _utc_date_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


def _money_sum(column: Any) -> Any:
    return type_coerce(func.coalesce(func.sum(column), 0), Money())


@dataclass(frozen=True)
class DayRevenue:
    day: date
    revenue: Decimal
    orders: int


def revenue_per_day(days: int = 30, today: date | None = None) -> list[DayRevenue]:
    """Revenue (payments received less refunds given) and the number of orders paid, for
    each of the last ``days`` days (today included), zero for quiet days. One statement: the
    payments and the refunds are one UNION ALL, summed per day."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = _midnight(first)
    money_in = select(utc_date(Payment.paid_at).label("day"), Payment.amount.label("amount"),
                      literal(1).label("paid")).where(Payment.status == PaymentStatus.SUCCEEDED,
                                                      Payment.paid_at >= since)
    money_out = select(utc_date(Refund.created_at).label("day"), (-Refund.amount).label("amount"),
                       literal(0).label("paid")).where(Refund.status == RefundStatus.SUCCEEDED,
                                                       Refund.created_at >= since)
    flows = union_all(money_in, money_out).subquery()
    rows = db.session.execute(
        select(flows.c.day, _money_sum(flows.c.amount), func.sum(flows.c.paid))
        .group_by(flows.c.day)
    ).all()
    # SQLite returns the day as text, PostgreSQL as a date.
    found = {str(row[0])[:10]: (row[1], row[2]) for row in rows}
    result = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        revenue, count = found.get(current.isoformat(), (ZERO, 0))
        result.append(DayRevenue(current, revenue, int(count or 0)))
    return result


def value_scale(peak: Decimal, steps: int = 4) -> list[Decimal]:
    """The values of a chart's gridlines when its tallest bar is ``peak``: zero and ``steps``
    equal steps of a round size (1, 2, 2.5 or 5 times a power of ten; at least 1), the last
    at or above ``peak``, so a bar's height can be read off the scale."""
    wanted = max(peak, ZERO) / steps
    step = Decimal(1)
    if wanted > 1:
        power = Decimal(10) ** wanted.adjusted()
        step = next(power * factor for factor in (Decimal(1), Decimal(2), Decimal("2.5"),
                                                  Decimal(5), Decimal(10))
                    if power * factor >= wanted)
    return [step * index for index in range(steps + 1)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def orders_by_status() -> dict[str, tuple[int, Decimal]]:
    """{status: (number of orders, their total)} for every status, zeros included."""
    rows = db.session.execute(
        select(Order.status, func.count(Order.id), _money_sum(Order.total)).group_by(Order.status)
    ).all()
    found = {status: (count, total) for status, count, total in rows}
    return {status: found.get(status, (0, ZERO)) for status in OrderStatus.ALL}


@dataclass(frozen=True)
class TopProduct:
    product_id: int | None
    name: str
    quantity: int
    revenue: Decimal


def top_products(limit: int = 10) -> list[TopProduct]:
    """The products that brought in the most (line totals of orders not cancelled)."""
    revenue = _money_sum(OrderItem.line_total)
    rows = db.session.execute(
        select(OrderItem.product_id, func.max(OrderItem.product_name),
               func.sum(OrderItem.quantity), revenue.label("revenue"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.status != OrderStatus.CANCELLED)
        .group_by(OrderItem.product_id)
        .order_by(revenue.desc(), func.max(OrderItem.product_name))
        .limit(limit)
    ).all()
    return [TopProduct(pid, name, int(quantity), total) for pid, name, quantity, total in rows]


def low_stock(limit: int = 10) -> list[Any]:
    """Variants of active products at or below the low-stock mark, fewest first."""
    return list(db.session.execute(
        select(Variant.id, Variant.label, Variant.sku, Variant.stock, Product.id.label("product_id"),
               Product.name.label("product_name"))
        .join(Product, Product.id == Variant.product_id)
        .where(Product.active.is_(True), Variant.stock <= current_app.config["SHOP_LOW_STOCK"])
        .order_by(Variant.stock, Product.name, Variant.id)
        .limit(limit)
    ).all())


def newest_members(limit: int = 5) -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.created_at.desc(), User.id.desc())
                                   .limit(limit)))


def newest_comments(limit: int = 5) -> list[Any]:
    """Recent comments with their author's name and post's title and slug, in one query."""
    return list(db.session.execute(
        select(Comment.id, Comment.body, Comment.created_at, User.username, Post.title, Post.slug)
        .join(User, User.id == Comment.author_id).join(Post, Post.id == Comment.post_id)
        .order_by(Comment.created_at.desc(), Comment.id.desc()).limit(limit)
    ).all())
