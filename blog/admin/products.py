"""Managing products: create and edit (with variants), stock adjustments, retirement.

Every change is written with its audit events in one transaction. A stock change on an
existing variant needs a reason, which the audit event keeps with who made it. A product that
has been ordered is deactivated, never deleted, so its orders keep pointing at it. Image
files follow the rows that name them: stored before the transaction, deleted after it (the
new one when it failed, the replaced or deleted product's one when it committed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, with_expression
from werkzeug.datastructures import FileStorage

from blog import images
from blog.admin.audit import diff, record
from blog.admin.services import AdminError
from blog.database import affected_rows, contains_pattern
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
    #: The stock the admin's form showed. Given, the save moves the stock by ``stock -
    #: stock_seen`` rather than setting it, so units sold since the form was opened stay sold.
    stock_seen: int | None = None


@dataclass
class ProductInput:
    """A product as the admin form gives it (its image comes separately, as an upload)."""

    name: str
    description: str
    category: str
    active: bool
    variants: list[VariantInput]
    #: Why a stock figure changed; needed when one did.
    reason: str = ""


def single_variant(product: Product | None, price: Decimal, stock: int,
                   stock_seen: int | None = None) -> VariantInput:
    """The variant a price and a stock alone describe: ``product``'s own when it has exactly
    one (keeping its label and SKU), else a new one."""
    if product is None or len(product.variants) != 1:
        return VariantInput(None, "", "", price, stock)
    only = product.variants[0]
    return VariantInput(only.id, only.label, only.sku or "", price, stock, stock_seen)


def several_variants(product: Product | None, rows: list[VariantInput]) -> list[VariantInput]:
    """``rows`` as the variants of ``product``. A single-variant product given only new rows
    keeps its variant as the first of them, so no unlabelled leftover stays on sale beside
    the new ones."""
    if (rows and product is not None and len(product.variants) == 1
            and all(row.id is None for row in rows)):
        return [replace(rows[0], id=product.variants[0].id), *rows[1:]]
    return rows


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


def category_choices() -> list[tuple[int, str]]:
    """``(id, name)`` of every category, by name: the product list's category filter."""
    rows = db.session.execute(select(Category.id, Category.name).order_by(Category.name))
    return [(ident, name) for ident, name in rows]


def category_names() -> list[str]:
    """The name of every category, sorted (the product form offers them)."""
    return list(db.session.scalars(select(Category.name).order_by(Category.name)))


def get_product(product_id: int) -> Product | None:
    """The product with its category and variants, or None."""
    return db.session.scalar(select(Product).where(Product.id == product_id).options(
        joinedload(Product.category), selectinload(Product.variants)))


def category_named(session: Session, name: str) -> Category | None:
    """The category called ``name`` (any case), created when new; None for an empty name."""
    name = " ".join(name.split())
    if not name:
        return None
    slug = slugify(name, 100)
    category = session.scalar(select(Category).where(
        or_(func.lower(Category.name) == name.lower(), Category.slug == slug)))
    if category is None:
        category = Category(name=name, slug=slug)
        session.add(category)
    return category


def save_product(product: Product | None, data: ProductInput,
                 upload: FileStorage | None = None) -> Product:
    """Create (``product`` None) or edit a product and its variants; ``upload``, when given,
    becomes its image.

    Raises ImageError when the upload is refused, and AdminError when a stock change has no
    reason, no variant is left, or a SKU or label is already taken; either way nothing
    changes, and no new file stays behind.
    """
    new_image = images.save_image(upload) if upload is not None else None
    old_image = product.image if product is not None else None
    try:
        saved = _write_product(product, data, new_image)
    except BaseException:  # whatever failed, no committed row names the new file
        images.delete_image(new_image)
        raise
    if new_image and old_image and old_image != new_image:
        images.delete_image(old_image)
    return saved


def _write_product(product: Product | None, data: ProductInput, image: str | None) -> Product:
    variants = data.variants
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
                product = Product(slug=unique_slug(Product.slug, slugify(data.name, 200)),
                                  variants=[])
                session.add(product)
            old_category = product.category.name if product.category else None
            product.name = data.name.strip()
            product.description = data.description
            product.active = data.active
            if image is not None:
                product.image = image
            # Before the category lookup below, whose autoflush would clear the history.
            changes = diff(product, ("name", "description", "active", "image"))
            product.category = category_named(session, data.category)
            new_category = product.category.name if product.category else None
            if new_category != old_category:
                changes["category"] = [old_category, new_category]
            session.flush()
            record("product", product.slug, "create" if new else "update", changes)
            _save_variants(session, product, variants, data.reason, new)
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
        seen = row.stock_seen if variant.id is not None else None
        variant.label, variant.sku = row.label.strip(), (row.sku.strip() or None)
        variant.price = row.price
        if seen is None:
            variant.stock = row.stock
        changes = diff(variant, ("label", "sku", "price", "stock"))
        if seen is not None and row.stock != seen:
            changes["stock"] = list(_move_stock(session, variant, row.stock - seen))
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


def _move_stock(session: Session, variant: Variant, delta: int) -> tuple[int, int]:
    """Add ``delta`` to the variant's stock in one conditional UPDATE, so sales committed since
    the admin opened the form are kept; returns the stock before and after. Raises AdminError
    when the stock would go below zero (more sold meanwhile than the admin takes away)."""
    moved = affected_rows(session.execute(
        update(Variant).where(Variant.id == variant.id, Variant.stock + delta >= 0)
        .values(stock=Variant.stock + delta).execution_options(synchronize_session=False)))
    session.refresh(variant, ["stock"])
    if not moved:
        name = variant.label or "The stock"
        raise AdminError(f"{name}: only {variant.stock} left now (sold since you opened the form), "
                         f"so taking away {-delta} would go below zero. Reload and try again.",
                         "variants")
    return variant.stock - delta, variant.stock


def was_ordered(product: Product) -> bool:
    """Whether any order has a line of ``product``."""
    return bool(db.session.scalar(select(exists().where(OrderItem.product_id == product.id))))


def retire_product(product: Product) -> str:
    """Delete a product never ordered (and then its image); deactivate one that was.
    Returns what happened: ``"deleted"`` or ``"deactivated"``."""
    image = product.image
    with transaction() as session:
        if was_ordered(product):
            if product.active:
                product.active = False
                record("product", product.slug, "deactivate", {"active": [True, False]})
            return "deactivated"
        record("product", product.slug, "delete", {"name": [product.name, None]})
        session.delete(product)
    images.delete_image(image)
    return "deleted"
