"""Reading the catalogue: product lists, categories, a product page, stock wording.

The shop's other use cases live beside this module, one file each: ``cart.py``,
``checkout.py``, ``orders.py`` and ``catalog_io.py`` (CSV import and export); its error
type is in ``errors.py``.

Catalogue lists join one aggregate over the variants (lowest and highest price, stock in
all) rather than loading every variant of every product, so a page of products costs the
same few statements however many variants they have.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import joinedload, selectinload, with_expression

from blog.extensions import db
from blog.search import parse, product_search
from blog.shop.models import Category, Product, Variant

#: The catalogue's sort orders. "relevance" (best match first) is for a search; without one
#: it means "newest". Anything else falls back to :func:`default_sort`.
SORTS = ("relevance", "newest", "price_asc", "price_desc", "name")


def default_sort(q: str) -> str:
    """The order a list comes in when none is asked for: best match first for a search."""
    return "relevance" if q.strip() else "newest"


def _variant_summary() -> Any:
    return (
        select(Variant.product_id,
               func.min(Variant.price).label("min_price"),
               func.max(Variant.price).label("max_price"),
               func.sum(Variant.stock).label("total_stock"))
        .group_by(Variant.product_id)
        .subquery("variant_summary")
    )


def catalogue(q: str = "", category: Category | None = None, sort: str = "") -> Select[Any]:
    """Active products for the shop's list: matching ``q`` (full-text, :mod:`blog.search`:
    name or description, words in any order, stemming, "phrases", -exclusions), in
    ``category``, in one of :data:`SORTS` (by default, :func:`default_sort`). Products
    without a variant are left out."""
    summary = _variant_summary()
    stmt = (
        select(Product)
        .join(summary, summary.c.product_id == Product.id)
        .where(Product.active.is_(True))
        .options(
            joinedload(Product.category),
            with_expression(Product.min_price, summary.c.min_price),
            with_expression(Product.max_price, summary.c.max_price),
            with_expression(Product.total_stock, summary.c.total_stock),
        )
    )
    matches = None
    if q.strip():
        query = parse(q)
        if query is None:  # only punctuation, or only exclusions: nothing to look for
            stmt = stmt.where(false())
        else:
            matches = product_search(query)
            stmt = stmt.join(matches, matches.c.id == Product.id)
    if category is not None:
        stmt = stmt.where(Product.category_id == category.id)
    if sort not in SORTS:
        sort = default_sort(q)
    newest: tuple[Any, ...] = (Product.created_at.desc(), Product.id.desc())
    order: tuple[Any, ...] = {
        "price_asc": (summary.c.min_price.asc(), Product.id.asc()),
        "price_desc": (summary.c.min_price.desc(), Product.id.desc()),
        "name": (Product.name.asc(), Product.id.asc()),
    }.get(sort, newest)
    if sort == "relevance" and matches is not None:
        order = (matches.c.rank.desc(), *newest)
    return stmt.order_by(*order)


def categories() -> list[Category]:
    """Every category, by name (for the catalogue's filter)."""
    return list(db.session.scalars(select(Category).order_by(Category.name)))


def get_category(slug: str) -> Category | None:
    return db.session.scalar(select(Category).where(Category.slug == slug))


def get_product(slug: str) -> Product | None:
    """A product with its category and variants (two statements)."""
    return db.session.scalar(
        select(Product).where(Product.slug == slug)
        .options(joinedload(Product.category), selectinload(Product.variants))
    )


def stock_state(stock: int) -> str:
    """What a shopper is told about ``stock``: "In stock", "Only 2 left" or "Sold out"."""
    if stock <= 0:
        return "Sold out"
    if stock <= current_app.config["SHOP_LOW_STOCK"]:
        return f"Only {stock} left"
    return "In stock"
