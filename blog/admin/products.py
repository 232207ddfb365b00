"""Managing products: create and edit (with variants), stock adjustments, retirement.

Every change is written with its audit events in one transaction. A stock change on an
existing variant needs a reason, which the audit event keeps with who made it. A product that
has been ordered is deactivated, never deleted, so its orders keep pointing at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, with_expression

from blog.admin.audit import diff, record
from blog.admin.services import AdminError
from blog.database import contains_pattern
from blog.database_session import transaction, unique_slug
from blog.extensions import db
from blog.shop.models import Category, OrderItem, Product, Variant
from blog.text import slugify


@dataclass
class VariantInput:
    """One row of the product form's variants section (``id`` None for a new variant)."""

    id: int | None
    label: str
    sku: str
    price: Decimal
    stock: int


def product_list(q: str = "", category_id: int | None = None, active: bool | None = None) -> Select[Any]:
    """Products for the admin list, with their category, lowest price and stock in the same
    statement."""
    stock = (select(func.coalesce(func.sum(Variant.stock), 0)).where(Variant.product_id == Product.id)
             .correlate(Product).scalar_subquery())
    stmt = select(Product).options(
        joinedload(Product.category),
        with_expression(Product.total_stock, stock),
        with_expression(Product.min_price, select(func.min(Variant.price))
                        .where(Variant.product_id == Product.id).correlate(Product).scalar_subquery()),
    ).order_by(Product.name, Product.id)
    if q.strip():
        pattern = contains_pattern(q)
        stmt = stmt.where(or_(Product.name.ilike(pattern, escape="\\"),
                              Product.slug.ilike(pattern, escape="\\"),
                              Product.variants.any(Variant.sku.ilike(pattern, escape="\\"))))
    if category_id is not None:
        stmt = stmt.where(Product.category_id == category_id)
    if active is not None:
        stmt = stmt.where(Product.active.is_(active))
    return stmt


def get_product(product_id: int) -> Product | None:
    return db.session.scalar(select(Product).where(Product.id == product_id).options(
        joinedload(Product.category), selectinload(Product.variants)))


def category_named(session: Session, name: str) -> Category | None:
    """The category called ``name`` (any case), created when new; None for an empty name."""
    name = " ".join(name.split())
    if not name:
        return None
    slug = slugify(name, 100, fallback="category")
    category = session.scalar(select(Category).where(
        or_(func.lower(Category.name) == name.lower(), Category.slug == slug)))
    if category is None:
        category = Category(name=name, slug=slug)
        session.add(category)
    return category


def save_product(product: Product | None, *, name: str, description: str, category: str,
                 active: bool, variants: list[VariantInput], reason: str = "",
                 image: str | None = None) -> Product:
    """Create (``product`` None) or edit a product and its variants.

    Raises AdminError, changing nothing, when a stock change has no reason, no variant is
    left, or a SKU or label is already taken.
    """
    if not variants:
        raise AdminError("A product needs at least one variant (a price and a stock).", "price")
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise AdminError("Two variants have the same label.", "variants")
    new = product is None
    try:
        with transaction() as session:
            if product is None:
                # variants=[]: a new product's collection is known empty, so it never loads
                product = Product(slug=unique_slug(Product.slug, slugify(name, 200, fallback="product")),
                                  variants=[])
                session.add(product)
            old_category = product.category.name if product.category else None
            product.name = name.strip()
            product.description = description
            product.active = active
            if image is not None:
                product.image = image
            # Before the category lookup below, whose autoflush would clear the history.
            changes = diff(product, ("name", "description", "active", "image"))
            product.category = category_named(session, category)
            new_category = product.category.name if product.category else None
            if new_category != old_category:
                changes["category"] = [old_category, new_category]
            session.flush()
            record("product", product.slug, "create" if new else "update", changes)
            _save_variants(session, product, variants, reason, new)
    except IntegrityError as error:
        message = ("That SKU is already used by another variant." if "sku" in str(error.orig)
                   else "Two variants of a product cannot have the same label.")
        raise AdminError(message, "variants") from error
    return product


def _save_variants(session: Session, product: Product, rows: list[VariantInput], reason: str,
                   new: bool) -> None:
    existing = {variant.id: variant for variant in product.variants}
    for row in rows:
        variant = existing.get(row.id) if row.id is not None else None
        if row.id is not None and variant is None:
            raise AdminError("A variant of another product was submitted.", "variants")
        if variant is None:
            variant = Variant(product=product)
            session.add(variant)
        variant.label, variant.sku = row.label.strip(), (row.sku.strip() or None)
        variant.price, variant.stock = row.price, row.stock
        changes = diff(variant, ("label", "sku", "price", "stock"))
        if "stock" in changes and variant.id is not None and not reason.strip():
            raise AdminError("Say why the stock changed (a count, a delivery, damage…).", "reason")
        session.flush()
        if changes:
            if row.id is None:
                action = "create"
            else:
                action = "adjust_stock" if set(changes) == {"stock"} else "update"
            record("variant", variant.sku or f"{product.slug}/{variant.label or variant.id}", action,
                   changes, note=reason.strip() if "stock" in changes and not new else "")


def was_ordered(product: Product) -> bool:
    return bool(db.session.scalar(select(exists().where(OrderItem.product_id == product.id))))


def retire_product(product: Product) -> str:
    """Delete a product never ordered; deactivate one that was. Returns what happened."""
    with transaction() as session:
        if was_ordered(product):
            if product.active:
                product.active = False
                record("product", product.slug, "deactivate", {"active": [True, False]})
            return "deactivated"
        record("product", product.slug, "delete", {"name": [product.name, None]})
        session.delete(product)
        return "deleted"
