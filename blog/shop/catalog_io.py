"""The product catalogue as CSV: import (upsert) and export.

The file has one row per variant, with the columns in :data:`COLUMNS` (in any order)::

    slug,name,description,category,active,variant,sku,price,stock

How an import works, and why:

- **All or nothing for the file, row by row for the data.** A file that cannot be read, is
  not UTF-8 or has the wrong header raises :class:`CatalogFileError` before anything is
  written. Otherwise every row is checked on its own: a bad row is skipped and reported with
  its line number while the good rows are written. The whole import is one service
  transaction (:func:`blog.database_session.transaction`), so an unexpected error writes nothing.
- **Upsert by slug and variant label.** A product is found by its slug (given, or derived
  from the name); its name, description, category and active flag come from the first row
  for that slug in the file that gets written, and are overwritten on an existing product.
  A variant is found by its product and label; its SKU, price and stock are overwritten.
  Nothing is ever deleted. Categories are found by name, then by slug, and created on demand.
- **Counting.** A row that creates a variant counts as created; a row that matches an
  existing variant counts as updated only when it changes something (the variant's SKU,
  price or stock, or the product's fields on the row that sets them), and as unchanged
  otherwise: re-importing an export changes nothing and says so. Only real changes are
  written.
- **Audited.** Every product and variant created or changed is announced, with the
  before/after of each changed field, by the :data:`catalog_imported` signal sent inside
  the import's transaction; the admin domain listens and writes the audit trail, which so
  commits or rolls back with the import. (The shop does not import the admin domain.)
- **Fast on large files.** Rows are handled in chunks of :data:`CHUNK_SIZE`: the chunk's
  products, variants and categories are looked up with a few ``IN`` queries, then written
  with one bulk (executemany) statement per kind inside one savepoint. Only if the database
  refuses that chunk (an ``IntegrityError``, such as a SKU already used by another product)
  is the chunk replayed row by row, each row in its own savepoint, so only the offending
  rows are skipped. A file of thousands of rows thus costs tens of statements, not thousands.
- **Core, not the ORM unit of work,** for the writes: ``insert()``/``update()`` on the mapped
  tables still apply the column defaults (``created_at``, ``updated_at``) and the ``Money``
  type, without building an object per row.

An export writes every product, active or not, with all its variants, in the same format,
so that exporting and importing into an empty database reproduces the catalogue exactly.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

from blinker import Namespace
from flask import current_app
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from blog.database import core_table
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.errors import ShopError
from blog.shop.models import Category, Product, Variant
from blog.shop.pricing import parse_money
from blog.text import slugify

#: The columns of a catalogue file, in the order an export writes them.
COLUMNS = ("slug", "name", "description", "category", "active", "variant", "sku", "price", "stock")

#: Rows written per bulk statement, and the longest ``IN`` list a lookup uses.
CHUNK_SIZE = 500

# Limits of the columns the values go to (checked here so a row gets a clear reason
# instead of a database error, which PostgreSQL raises and SQLite would not).
NAME_MAX = 200
SLUG_MAX = 220
CATEGORY_MAX = 80
CATEGORY_SLUG_MAX = 100
LABEL_MAX = 80
SKU_MAX = 64
STOCK_MAX = 2_147_483_647  # a 32-bit INTEGER on PostgreSQL

_TRUE = {"", "true", "yes", "1"}
_FALSE = {"false", "no", "0"}
_WHOLE_NUMBER = re.compile(r"[0-9]+")


class CatalogFileError(ShopError):
    """The file as a whole cannot be imported (unreadable, not UTF-8, wrong header)."""


@dataclass(frozen=True)
class RawRow:
    """A data row as read from the file: the line it starts on and its values by column,
    or what is wrong with its shape (then it is reported, not imported)."""

    line: int
    values: dict[str, str]
    problem: str | None = None


_signals = Namespace()
#: Sent inside the import's transaction when it created or changed anything, as
#: ``catalog_imported.send(app, changes=[CatalogChange, ...])``.
catalog_imported = _signals.signal("catalog-imported")


@dataclass(frozen=True)
class CatalogChange:
    """One product or variant an import created or changed: ``changes`` is
    ``{field: [before, after]}`` (before is None for a new one)."""

    entity_type: str  # "product" or "variant"
    entity_id: str  # the product's slug; the variant's SKU, else "slug/label"
    action: str  # "create" or "update"
    changes: dict[str, list[Any]]


@dataclass
class ImportResult:
    """What an import did: variants created, updated and found unchanged, the rows skipped,
    as ``(line number, reason)`` in line order, and every change made."""

    created: int = 0
    updated: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0
    changes: list[CatalogChange] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """"3 created, 1 updated, 2 skipped"; "0 created, 1 updated, 4 unchanged, 0 skipped"
        when some rows changed nothing."""
        unchanged = f"{self.unchanged} unchanged, " if self.unchanged else ""
        return f"{self.created} created, {self.updated} updated, {unchanged}{len(self.skipped)} skipped"


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: rows (one per variant) and products, and how many products
    were left out because they have no variant (a row describes a variant)."""

    rows: int
    products: int
    without_variants: int


# --- reading the file ----------------------------------------------------------------------


def read_csv(lines: Iterable[str]) -> list[RawRow]:
    """Read a catalogue file's header and rows from ``lines`` (a file opened as text with
    ``newline=""``; ``encoding="utf-8-sig"`` is best, but a leading BOM is removed anyway).

    Blank lines and rows whose every field is empty are left out. Raises
    :class:`CatalogFileError` when the file is not UTF-8, is not CSV or has the wrong header.
    The whole file is read here, before anything is written, so a file that turns out to be
    broken half-way writes nothing, and the caller knows the row count for a progress bar.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            raise CatalogFileError(f"the file is empty; the first line must be the header "
                                   f"{','.join(COLUMNS)}")
        columns = _check_header(header)
        rows: list[RawRow] = []
        next_line = reader.line_num + 1  # where the next row starts (a field may span lines)
        for values in reader:
            line, next_line = next_line, reader.line_num + 1
            if not any(value.strip() for value in values):
                continue
            if len(values) != len(columns):
                # Kept as a row so that it is reported with its line number, not fatal.
                rows.append(RawRow(line, {}, f"has {len(values)} fields, expected {len(columns)}"))
                continue
            rows.append(RawRow(line, dict(zip(columns, values, strict=True))))
    except UnicodeDecodeError:
        raise CatalogFileError("the file is not UTF-8 text") from None
    except csv.Error as error:
        raise CatalogFileError(f"line {reader.line_num}: not valid CSV ({error})") from None
    return rows


def _check_header(header: list[str]) -> list[str]:
    """The header's column names, in file order; every column of :data:`COLUMNS` exactly once."""
    if header:
        header[0] = header[0].lstrip("\ufeff")  # a BOM the caller's decoding left in place
    columns = [name.strip().lower() for name in header]
    problems = []
    missing = [name for name in COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in COLUMNS]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unknown:
        problems.append("unknown " + ", ".join(repr(name) for name in unknown))
    if repeated:
        problems.append("repeated " + ", ".join(repeated))
    if problems:
        raise CatalogFileError(f"bad header ({'; '.join(problems)}); the columns must be "
                               f"{','.join(COLUMNS)}")
    return columns


# --- checking a row ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """A row that passed every check, with its values converted."""

    line: int
    slug: str
    name: str
    description: str
    category: str | None
    active: bool
    label: str
    sku: str | None
    price: Decimal
    stock: int


class _RowError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_row(raw: RawRow) -> _Row:
    """Convert and check one row; raise :class:`_RowError` with the first problem found."""
    if raw.problem is not None:
        raise _RowError(raw.problem)
    if any("\x00" in value for value in raw.values.values()):
        # No text a person writes contains NUL, and PostgreSQL cannot store it.
        raise _RowError("contains a NUL character")
    checked: dict[str, Any] = {}
    for column, check in _COLUMN_CHECKS.items():
        checked[column] = check(raw.values[column], checked)
    return _Row(line=raw.line, slug=checked["slug"], name=checked["name"],
                description=checked["description"], category=checked["category"],
                active=checked["active"], label=checked["variant"], sku=checked["sku"],
                price=checked["price"], stock=checked["stock"])


def _at_most(limit: int, column: str, value: str) -> str:
    if len(value) > limit:
        raise _RowError(f"{column} is longer than {limit} characters")
    return value


def _check_name(text: str, checked: Mapping[str, Any]) -> str:
    name = text.strip()
    if not name:
        raise _RowError("name is required")
    return _at_most(NAME_MAX, "name", name)


def _check_slug(text: str, checked: Mapping[str, Any]) -> str:
    slug = text.strip()
    if not slug:
        return slugify(checked["name"])
    _at_most(SLUG_MAX, "slug", slug)
    if slugify(slug, max_length=SLUG_MAX) != slug:  # what slugify makes, in any script
        raise _RowError(f"slug {slug!r} must be lower-case letters, digits and single hyphens "
                        f"(like {slugify(slug, max_length=SLUG_MAX)!r})")
    return slug


def _check_description(text: str, checked: Mapping[str, Any]) -> str:
    return text  # free text, kept exactly as written


def _check_category(text: str, checked: Mapping[str, Any]) -> str | None:
    return _at_most(CATEGORY_MAX, "category", text.strip()) or None


def _check_active(text: str, checked: Mapping[str, Any]) -> bool:
    flag = text.strip().lower()
    if flag not in _TRUE | _FALSE:
        raise _RowError(f"active {text!r} must be true or false (or yes/no, 1/0)")
    return flag in _TRUE


def _check_variant(text: str, checked: Mapping[str, Any]) -> str:
    return _at_most(LABEL_MAX, "variant", text.strip())


def _check_sku(text: str, checked: Mapping[str, Any]) -> str | None:
    return _at_most(SKU_MAX, "sku", text.strip()) or None  # no SKU is NULL: unique only when given


def _check_price(text: str, checked: Mapping[str, Any]) -> Decimal:
    if not text.strip():
        raise _RowError("price is required")
    try:
        return parse_money(text)
    except ValueError as error:
        raise _RowError(f"price {error}") from None


def _check_stock(text: str, checked: Mapping[str, Any]) -> int:
    digits = text.strip()
    if not digits:
        raise _RowError("stock is required")
    if not _WHOLE_NUMBER.fullmatch(digits):
        raise _RowError(f"stock {text!r} is not a whole number of 0 or more")
    stock = int(digits)
    if stock > STOCK_MAX:
        raise _RowError(f"stock {digits} is too large")
    return stock


#: Each column's check: given the column's text and the values checked before it, return the
#: converted value or raise :class:`_RowError`. Run in this order, which decides the problem
#: a row with several is reported for; the name comes first because a slug left empty is
#: made from it.
_COLUMN_CHECKS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "name": _check_name,
    "slug": _check_slug,
    "description": _check_description,
    "category": _check_category,
    "active": _check_active,
    "variant": _check_variant,
    "sku": _check_sku,
    "price": _check_price,
    "stock": _check_stock,
}


def _category_slug(name: str) -> str:
    return slugify(name, max_length=CATEGORY_SLUG_MAX)


# --- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ProductValues:
    name: str
    description: str
    category_id: int | None
    category: str | None  # its name
    active: bool


@dataclass
class _Known:
    """What the import knows exists in the database: loaded once per chunk, then extended
    with what the import itself wrote (only after that write's savepoint was released)."""

    products: dict[str, int] = field(default_factory=dict)  # slug -> id
    variants: dict[tuple[int, str], int] = field(default_factory=dict)  # (product id, label) -> id
    #: What the database holds, to write and audit only real changes.
    product_values: dict[str, _ProductValues] = field(default_factory=dict)  # by slug
    #: variant id -> (sku, price, stock)
    variant_values: dict[int, tuple[str | None, Decimal, int]] = field(default_factory=dict)
    categories_by_name: dict[str, int] = field(default_factory=dict)
    categories_by_slug: dict[str, int] = field(default_factory=dict)
    #: Slugs whose product fields this import already set (the first written row wins).
    defined: set[str] = field(default_factory=set)

    def category_id(self, name: str) -> int | None:
        """The category called ``name``, else the one with its slug."""
        found = self.categories_by_name.get(name)
        return found if found is not None else self.categories_by_slug.get(_category_slug(name))


@dataclass
class _Written:
    """What one savepoint wrote; merged into :class:`_Known` only once it is released."""

    products: dict[str, int] = field(default_factory=dict)
    categories: dict[str, tuple[str, int]] = field(default_factory=dict)  # slug -> (name, id)
    defined: set[str] = field(default_factory=set)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: list[CatalogChange] = field(default_factory=list)

    def merge_into(self, known: _Known, result: ImportResult) -> None:
        known.products.update(self.products)
        for slug, (name, category_id) in self.categories.items():
            known.categories_by_slug[slug] = category_id
            known.categories_by_name.setdefault(name, category_id)
        known.defined |= self.defined
        result.created += self.created
        result.updated += self.updated
        result.unchanged += self.unchanged
        result.changes.extend(self.changes)


def _chunks(items: Sequence[Any], size: int = CHUNK_SIZE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _preload(session: Session, rows: list[_Row], known: _Known) -> None:
    """Look up the products (with their variants) and categories ``rows`` refer to that the
    import has not seen yet: a few ``IN`` queries instead of one per row."""
    slugs = sorted({row.slug for row in rows} - known.products.keys())
    new_ids: list[int] = []
    for part in _chunks(slugs):
        for product_id, slug, name, description, category_id, active, category in session.execute(
                select(Product.id, Product.slug, Product.name, Product.description, Product.category_id,
                       Product.active, Category.name)
                .outerjoin(Category, Category.id == Product.category_id).where(Product.slug.in_(part))):
            known.products[slug] = product_id
            known.product_values[slug] = _ProductValues(name, description, category_id, category, active)
            new_ids.append(product_id)
    for part in _chunks(new_ids):
        for variant_id, product_id, label, sku, price, stock in session.execute(
                select(Variant.id, Variant.product_id, Variant.label, Variant.sku, Variant.price,
                       Variant.stock)
                .where(Variant.product_id.in_(part))):
            known.variants[(product_id, label)] = variant_id
            known.variant_values[variant_id] = (sku, price, stock)

    names = sorted({row.category for row in rows if row.category is not None
                    and known.category_id(row.category) is None})
    for part in _chunks(names):
        # By name first (a category made elsewhere may have another slug), then by slug.
        for category_id, name, slug in session.execute(
                select(Category.id, Category.name, Category.slug)
                .where(or_(Category.name.in_(part),
                           Category.slug.in_({_category_slug(name) for name in part})))
                .order_by(Category.id)):
            known.categories_by_name.setdefault(name, category_id)
            known.categories_by_slug[slug] = category_id


_products = core_table(Product)
_variants = core_table(Variant)
_categories = core_table(Category)

# Executemany UPDATEs: the bound names must differ from the column names they set.
_UPDATE_PRODUCT = (
    update(_products).where(_products.c.id == bindparam("b_id"))
    .values(name=bindparam("b_name"), description=bindparam("b_description"),
            category_id=bindparam("b_category_id"), active=bindparam("b_active"))
)
_UPDATE_VARIANT = (
    update(_variants).where(_variants.c.id == bindparam("b_id"))
    .values(sku=bindparam("b_sku"), price=bindparam("b_price", type_=_variants.c.price.type),
            stock=bindparam("b_stock"))
)


def _write(session: Session, rows: list[_Row], known: _Known) -> _Written:
    """Write ``rows`` with one bulk statement per kind (categories, new products, changed
    products, new variants, changed variants). ``known`` is only read: the caller merges
    the returned :class:`_Written` once the enclosing savepoint is released."""
    written = _Written()

    # The first row for a slug that no earlier write defined sets the product's fields.
    defining: dict[str, _Row] = {}
    for row in rows:
        if row.slug not in known.defined:
            defining.setdefault(row.slug, row)
    written.defined = set(defining)

    new_categories: dict[str, str] = {}  # slug -> name; "Books" and "books" are one category
    for row in defining.values():
        if row.category is not None and known.category_id(row.category) is None:
            new_categories.setdefault(_category_slug(row.category), row.category)
    if new_categories:
        created = session.execute(
            insert(_categories).returning(_categories.c.id, _categories.c.slug),
            [{"name": name, "slug": slug} for slug, name in new_categories.items()],
        )
        written.categories = {slug: (new_categories[slug], category_id)
                              for category_id, slug in created}

    def category_id(name: str | None) -> int | None:
        if name is None:
            return None
        found = known.category_id(name)
        return found if found is not None else written.categories[_category_slug(name)][1]

    new_products = [row for slug, row in defining.items() if slug not in known.products]
    if new_products:
        # RETURNING the slug too: the ids are matched by slug, whatever order they come in.
        created = session.execute(
            insert(_products).returning(_products.c.id, _products.c.slug),
            [{"slug": row.slug, "name": row.name, "description": row.description,
              "category_id": category_id(row.category), "active": row.active}
             for row in new_products],
        )
        written.products = {slug: product_id for product_id, slug in created}
        written.changes += [
            CatalogChange("product", row.slug, "create", {
                "name": [None, row.name], "description": [None, row.description],
                "category": [None, row.category], "active": [None, row.active]})
            for row in new_products]
    changed_products = []
    for slug, row in defining.items():
        if slug in known.products:
            changes = _product_changes(known.product_values[slug], row, category_id(row.category))
            if changes:
                changed_products.append(row)
                written.changes.append(CatalogChange("product", slug, "update", changes))
    if changed_products:
        session.execute(_UPDATE_PRODUCT, [
            {"b_id": known.products[row.slug], "b_name": row.name,
             "b_description": row.description, "b_category_id": category_id(row.category),
             "b_active": row.active}
            for row in changed_products
        ])

    changed_slugs = {row.slug for row in changed_products}
    new_variants: list[dict[str, Any]] = []
    changed_variants: list[dict[str, Any]] = []
    for row in rows:
        product_id = known.products.get(row.slug)
        if product_id is None:
            product_id = written.products[row.slug]
        variant_id = known.variants.get((product_id, row.label))
        name = row.sku or f"{row.slug}/{row.label}"
        if variant_id is None:
            new_variants.append({"product_id": product_id, "label": row.label, "sku": row.sku,
                                 "price": row.price, "stock": row.stock})
            written.changes.append(CatalogChange("variant", name, "create", {
                "label": [None, row.label], "sku": [None, row.sku], "price": [None, row.price],
                "stock": [None, row.stock]}))
            written.created += 1
            continue
        before = dict(zip(("sku", "price", "stock"), known.variant_values[variant_id], strict=True))
        after = {"sku": row.sku, "price": row.price, "stock": row.stock}
        changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        if changes:
            changed_variants.append({"b_id": variant_id, "b_sku": row.sku,
                                     "b_price": row.price, "b_stock": row.stock})
            written.changes.append(CatalogChange("variant", name, "update", changes))
        # The row that set its product's fields counts as updated if they changed.
        if changes or (defining.get(row.slug) is row and row.slug in changed_slugs):
            written.updated += 1
        else:
            written.unchanged += 1
    if new_variants:
        session.execute(insert(_variants), new_variants)
    if changed_variants:
        session.execute(_UPDATE_VARIANT, changed_variants)
    return written


def _product_changes(before: _ProductValues, row: _Row, category_id: int | None) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the product fields ``row`` changes (the category by name)."""
    changes: dict[str, list[Any]] = {}
    for key, old, new in (("name", before.name, row.name), ("active", before.active, row.active),
                          ("description", before.description, row.description)):
        if old != new:
            changes[key] = [old, new]
    if before.category_id != category_id:
        changes["category"] = [before.category, row.category]
    return changes


def _refusal(error: IntegrityError, row: _Row) -> str:
    """Why the database refused ``row``, in words (the drivers' messages differ)."""
    message = str(error.orig)
    if "sku" in message.lower():
        return f"SKU {row.sku!r} is already used by another variant"
    return "refused by the database: " + message.strip().splitlines()[0]


def _write_chunk(session: Session, rows: list[_Row], known: _Known, result: ImportResult) -> None:
    """Write ``rows`` in one savepoint; if the database refuses them, write them again one
    savepoint per row, so that only the rows it refuses are skipped."""
    try:
        with session.begin_nested():
            written = _write(session, rows, known)
    except IntegrityError:
        for row in rows:
            try:
                with session.begin_nested():
                    written = _write(session, [row], known)
            except IntegrityError as error:
                result.skipped.append((row.line, _refusal(error, row)))
            else:
                written.merge_into(known, result)
    else:
        written.merge_into(known, result)


def import_rows(rows: Sequence[RawRow], *,
                progress: Callable[[int], None] | None = None) -> ImportResult:
    """Upsert the products and variants of ``rows`` (from :func:`read_csv`) in one service
    transaction. Bad rows are skipped and reported; see the module's docstring for the rules.

    ``progress`` is called with the number of rows handled after each chunk (for a
    progress bar).
    """
    result = ImportResult()
    first_line: dict[tuple[str, str], int] = {}  # (slug, label) -> line of its first valid row
    with transaction() as session:
        known = _Known()
        for chunk in _chunks(rows):
            valid: list[_Row] = []
            for raw in chunk:
                try:
                    row = _check_row(raw)
                except _RowError as error:
                    result.skipped.append((raw.line, error.reason))
                    continue
                earlier = first_line.setdefault((row.slug, row.label), row.line)
                if earlier != row.line:
                    result.skipped.append((row.line, (f"duplicate of line {earlier} (same slug "
                                                     f"{row.slug!r} and variant {row.label!r})")))
                    continue
                valid.append(row)
            if valid:
                _preload(session, valid, known)
                _write_chunk(session, valid, known, result)
            if progress is not None:
                progress(len(chunk))
        if result.changes:
            # Inside the transaction: the audit trail commits or rolls back with the import.
            catalog_imported.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                                  changes=result.changes)
    result.skipped.sort()
    return result


def import_products(lines: Iterable[str], *,
                    progress: Callable[[int], None] | None = None) -> ImportResult:
    """Read a catalogue file from ``lines`` and import it: :func:`read_csv`, then
    :func:`import_rows`. Raises :class:`CatalogFileError`, writing nothing, for a bad file."""
    return import_rows(read_csv(lines), progress=progress)


# --- export --------------------------------------------------------------------------------


def export_products(out: TextIO) -> ExportResult:
    """Write every product, active or not, one row per variant, ordered by product slug
    then variant id, to ``out`` (a text file opened with ``newline=""``) in the format
    :func:`import_products` reads. Products without a variant cannot be described by a row
    and are left out (and counted)."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    stmt = (
        select(Product.slug, Product.name, Product.description, Category.name, Product.active,
               Variant.label, Variant.sku, Variant.price, Variant.stock)
        .join(Variant, Variant.product_id == Product.id)
        .outerjoin(Category, Category.id == Product.category_id)
        .order_by(Product.slug, Variant.id)
        .execution_options(yield_per=1000)  # streamed: a big catalogue need not fit in memory
    )
    rows = products = 0
    previous_slug = None
    for slug, name, description, category, active, label, sku, price, stock in db.session.execute(stmt):
        writer.writerow((slug, name, description, category or "", "true" if active else "false",
                         label, sku or "", f"{price:.2f}", stock))
        rows += 1
        if slug != previous_slug:  # rows come ordered by slug
            products, previous_slug = products + 1, slug
    total = db.session.scalar(select(func.count()).select_from(Product)) or 0
    return ExportResult(rows=rows, products=products, without_variants=total - products)
