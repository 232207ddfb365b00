"""``flask import-products`` and ``flask export-products``: the CSV catalogue."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from blog.database import count_statements
from blog.database_session import transaction
from blog.extensions import db
from blog.shop import catalog_io
from blog.shop.catalog_io import COLUMNS
from blog.shop.models import Category, Product, Variant

HEADER = ",".join(COLUMNS)


def row(**values: str) -> dict[str, str]:
    """A data row: an active one-variant "Poster" at 10.00 with 1 in stock, unless overridden."""
    defaults = {"slug": "", "name": "Poster", "description": "", "category": "", "active": "true",
                "variant": "", "sku": "", "price": "10.00", "stock": "1"}
    defaults.update(values)
    return defaults


def write_csv(path: Path, rows: list[dict[str, str] | list[str]], *,
              header: list[str] | tuple[str, ...] = COLUMNS, encoding: str = "utf-8") -> Path:
    """Write ``rows`` (dicts by column, or raw lists of fields) under ``header``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for values in rows:
        writer.writerow([values.get(name, "") for name in header] if isinstance(values, dict) else values)
    path.write_text(out.getvalue(), encoding=encoding, newline="")
    return path


def run_import(runner: Any, path: Path) -> Any:
    return runner.invoke(args=["import-products", str(path)])


def output_lines(result: Any) -> list[str]:
    return result.stdout.splitlines()


def catalogue(app: Any) -> list[tuple[Any, ...]]:
    """Every variant with its product and category, as an export orders them."""
    with app.app_context():
        return [tuple(found) for found in db.session.execute(
            select(Product.slug, Product.name, Product.description, Category.name, Product.active,
                   Variant.label, Variant.sku, Variant.price, Variant.stock)
            .join(Variant, Variant.product_id == Product.id)
            .outerjoin(Category, Category.id == Product.category_id)
            .order_by(Product.slug, Variant.id)
        )]


def count(app: Any, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


# --- importing -----------------------------------------------------------------------------


def test_import_creates_products_variants_and_categories(app, runner, tmp_path):
    path = write_csv(tmp_path / "catalogue.csv", [
        row(name="City Poster", description="Printed on *matte* paper.", category="Prints",
            variant="A4", sku="CITY-A4", price="12.50", stock="3"),
        row(name="City Poster", category="Prints", variant="A3", sku="CITY-A3", price="20", stock="0"),
        row(name="City Poster", category="Prints", variant="A2", sku="CITY-A2", price="1,234.5",
            stock="7"),
        row(slug="field-notes", name="Field Notes", category="Books & Zines", active="no",
            sku="BOOK-1", price="9.99", stock="12"),
        row(name="Sticker", price="0", stock="100"),
    ])

    result = run_import(runner, path)

    assert result.exit_code == 0, result.output
    assert output_lines(result) == ["5 created, 0 updated, 0 skipped"]
    assert catalogue(app) == [
        ("city-poster", "City Poster", "Printed on *matte* paper.", "Prints", True, "A4", "CITY-A4",
         Decimal("12.50"), 3),
        ("city-poster", "City Poster", "Printed on *matte* paper.", "Prints", True, "A3", "CITY-A3",
         Decimal("20.00"), 0),
        ("city-poster", "City Poster", "Printed on *matte* paper.", "Prints", True, "A2", "CITY-A2",
         Decimal("1234.50"), 7),
        ("field-notes", "Field Notes", "", "Books & Zines", False, "", "BOOK-1", Decimal("9.99"), 12),
        ("sticker", "Sticker", "", None, True, "", None, Decimal("0.00"), 100),
    ]
    with app.app_context():
        assert db.session.execute(select(Category.name, Category.slug).order_by(Category.slug)).all() == [
            ("Books & Zines", "books-zines"), ("Prints", "prints")]
        # Core inserts on the mapped table still get the Python-side timestamp defaults.
        for product in db.session.scalars(select(Product)):
            assert product.created_at is not None and product.created_at.tzinfo is not None
            assert product.updated_at is not None


def test_reimport_updates_in_place(app, runner, tmp_path):
    first = write_csv(tmp_path / "first.csv", [
        row(name="Mug", category="Kitchen", variant="White", sku="MUG-W", price="8.00", stock="5"),
        row(name="Mug", category="Kitchen", variant="Black", sku="MUG-B", price="8.00", stock="5"),
    ])
    assert output_lines(run_import(runner, first)) == ["2 created, 0 updated, 0 skipped"]
    with app.app_context():
        ids_before = db.session.execute(select(Variant.label, Variant.id).order_by(Variant.id)).all()
        created_at = db.session.scalar(select(Product.created_at))

    second = write_csv(tmp_path / "second.csv", [
        row(slug="mug", name="Big Mug", description="Now bigger.", active="false", variant="Black",
            sku="MUG-BLACK", price="9.50", stock="2"),
        row(slug="mug", name="Ignored: not the product's first row", category="Other",
            variant="White", sku="MUG-W", price="8.00", stock="0"),
        row(slug="mug", name="Big Mug", variant="Red", sku="MUG-R", price="9.50", stock="1"),
    ])
    result = run_import(runner, second)

    assert result.exit_code == 0, result.output
    # Both matched variants changed (White's stock, Black's SKU, price and stock); a new label
    # is created.
    assert output_lines(result) == ["1 created, 2 updated, 0 skipped"]
    assert catalogue(app) == [
        ("mug", "Big Mug", "Now bigger.", None, False, "White", "MUG-W", Decimal("8.00"), 0),
        ("mug", "Big Mug", "Now bigger.", None, False, "Black", "MUG-BLACK", Decimal("9.50"), 2),
        ("mug", "Big Mug", "Now bigger.", None, False, "Red", "MUG-R", Decimal("9.50"), 1),
    ]
    with app.app_context():
        assert db.session.execute(select(Variant.label, Variant.id).order_by(Variant.id)).all()[:2] \
            == ids_before
        product = db.session.scalars(select(Product)).one()
        assert product.created_at == created_at
        assert product.updated_at >= created_at
    assert count(app, Category) == 1  # "Kitchen" stays; "Other" was on a row that set nothing


def test_slug_is_derived_from_the_name(app, runner, tmp_path):
    path = write_csv(tmp_path / "catalogue.csv", [
        row(name="Ünïcode Poster & Co!"),
        row(name="!!!", category="???"),
        row(name="Ünïcode  poster, co", variant="Large"),  # same slug: a variant of the first
    ])

    result = run_import(runner, path)

    assert output_lines(result) == ["3 created, 0 updated, 0 skipped"]
    # A name with no letters or digits gets a fingerprint of itself, never a generic word.
    from blog.text import slugify
    assert [(found[0], found[1], found[3], found[5]) for found in catalogue(app)] == sorted([
        (slugify("!!!"), "!!!", "???", ""),
        ("unicode-poster-co", "Ünïcode Poster & Co!", None, ""),
        ("unicode-poster-co", "Ünïcode Poster & Co!", None, "Large"),
    ])
    assert slugify("!!!") not in ("product", "post")
    with app.app_context():
        assert db.session.scalar(select(Category.slug)) == slugify("???") != "category"


@pytest.mark.parametrize(("text", "active"), [
    ("true", True), ("TRUE", True), ("yes", True), ("1", True), ("", True), (" Yes ", True),
    ("false", False), ("no", False), ("0", False), ("False", False),
])
def test_active_values(app, runner, tmp_path, text, active):
    result = run_import(runner, write_csv(tmp_path / "catalogue.csv", [row(active=text)]))
    assert output_lines(result) == ["1 created, 0 updated, 0 skipped"]
    assert catalogue(app)[0][4] is active


def test_bad_rows_are_skipped_with_their_line_numbers(app, runner, tmp_path):
    path = write_csv(tmp_path / "catalogue.csv", [
        row(name="Good One", description="Two\nlines", variant=""),      # lines 2-3
        row(name=""),                                                      # 4
        row(name="N" * 201),                                               # 5
        row(name="Slugged", slug="Bad Slug"),                              # 6
        row(name="Slugged", slug="a--b"),                                  # 7
        row(name="Slugged", slug="a" * 221),                               # 8
        row(name="Shelved", category="C" * 81),                            # 9
        row(name="Maybe", active="maybe"),                                 # 10
        row(name="Labelled", variant="V" * 81),                            # 11
        row(name="Coded", sku="S" * 65),                                   # 12
        row(name="Free", price=""),                                        # 13
        row(name="Priced", price="abc"),                                   # 14
        row(name="Priced", price="-1"),                                    # 15
        row(name="Priced", price="1.999"),                                 # 16
        row(name="Priced", price="10000000"),                              # 17
        row(name="Stocked", stock=""),                                     # 18
        row(name="Stocked", stock="-1"),                                   # 19
        row(name="Stocked", stock="2.5"),                                  # 20
        row(name="Stocked", stock="99999999999"),                          # 21
        row(name="Nul", description="a\x00b"),                            # 22
        ["short", "row"],                                                  # 23
        row(name="Good One", price="99.00"),                               # 24: duplicate
        row(name="Good Two", variant="Large", active="no"),                # 25
    ])

    result = run_import(runner, path)

    assert result.exit_code == 0, result.output
    assert output_lines(result) == [
        "2 created, 0 updated, 21 skipped",
        "line 4: name is required",
        "line 5: name is longer than 200 characters",
        "line 6: slug 'Bad Slug' must be lower-case letters, digits and single hyphens (like 'bad-slug')",
        "line 7: slug 'a--b' must be lower-case letters, digits and single hyphens (like 'a-b')",
        "line 8: slug is longer than 220 characters",
        "line 9: category is longer than 80 characters",
        "line 10: active 'maybe' must be true or false (or yes/no, 1/0)",
        "line 11: variant is longer than 80 characters",
        "line 12: sku is longer than 64 characters",
        "line 13: price is required",
        "line 14: price 'abc' is not an amount of money",
        "line 15: price '-1' is not an amount of money",
        "line 16: price '1.999' has fractions of a cent",
        "line 17: price '10000000' is too large",
        "line 18: stock is required",
        "line 19: stock '-1' is not a whole number of 0 or more",
        "line 20: stock '2.5' is not a whole number of 0 or more",
        "line 21: stock 99999999999 is too large",
        "line 22: contains a NUL character",
        "line 23: has 2 fields, expected 9",
        "line 24: duplicate of line 2 (same slug 'good-one' and variant '')",
    ]
    assert catalogue(app) == [
        ("good-one", "Good One", "Two\nlines", None, True, "", None, Decimal("10.00"), 1),
        ("good-two", "Good Two", "", None, False, "Large", None, Decimal("10.00"), 1),
    ]


def test_blank_lines_are_ignored_and_columns_may_come_in_any_order(app, runner, tmp_path):
    header = list(reversed(COLUMNS))
    path = tmp_path / "catalogue.csv"
    path.write_text(",".join(header) + "\r\n\r\n" + "3,12.00,SKU-1,,true,,,Pen,\r\n,,,,,,,,\r\n"
                    + "1,x,,,,,,Pencil,\r\n", encoding="utf-8", newline="")

    result = run_import(runner, path)

    assert output_lines(result) == ["1 created, 0 updated, 1 skipped",
                                    "line 5: price 'x' is not an amount of money"]
    assert catalogue(app) == [("pen", "Pen", "", None, True, "", "SKU-1", Decimal("12.00"), 3)]


def test_a_row_the_database_refuses_is_skipped_and_the_rest_commit(app, runner, tmp_path):
    assert run_import(runner, write_csv(tmp_path / "existing.csv", [
        row(name="Existing", sku="TAKEN", price="5.00"),
    ])).exit_code == 0

    result = run_import(runner, write_csv(tmp_path / "catalogue.csv", [
        row(name="Before", sku="B-1"),                                   # 2
        row(name="Clash", variant="S", sku="TAKEN"),                     # 3: another product's SKU
        row(name="Clash", variant="M", sku="CLASH-M", category="Tees"),  # 4: now defines Clash
        row(name="Twin", variant="A", sku="TWIN"),                       # 5
        row(name="Twin", variant="B", sku="TWIN"),                       # 6: same SKU in the file
        row(name="After", sku="A-1"),                                    # 7
    ]))

    assert result.exit_code == 0, result.output
    assert output_lines(result) == [
        "4 created, 0 updated, 2 skipped",
        "line 3: SKU 'TAKEN' is already used by another variant",
        "line 6: SKU 'TWIN' is already used by another variant",
    ]
    assert [(found[0], found[3], found[5], found[6]) for found in catalogue(app)] == [
        ("after", None, "", "A-1"),
        ("before", None, "", "B-1"),
        ("clash", "Tees", "M", "CLASH-M"),
        ("existing", None, "", "TAKEN"),
        ("twin", None, "A", "TWIN"),
    ]


def test_the_byte_order_mark_is_accepted(app, runner, tmp_path):
    path = write_csv(tmp_path / "catalogue.csv", [row(name="Café Print")], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert output_lines(run_import(runner, path)) == ["1 created, 0 updated, 0 skipped"]
    assert catalogue(app)[0][:2] == ("cafe-print", "Café Print")


def test_read_csv_drops_a_bom_its_caller_left_in():
    rows = catalog_io.read_csv(io.StringIO("\ufeff" + HEADER + "\n,Pen,,,,,,1,1\n"))
    values = ["", "Pen", "", "", "", "", "", "1", "1"]
    assert rows == [catalog_io.RawRow(2, dict(zip(COLUMNS, values, strict=True)))]


@pytest.mark.parametrize(("content", "message"), [
    ("", "the file is empty; the first line must be the header " + HEADER),
    ("slug,name,description,category,active,variant,sku,price\n,Pen,,,,,,1\n",
     "bad header (missing stock)"),
    (HEADER + ",colour\n,Pen,,,,,,1,1,red\n", "bad header (unknown 'colour')"),
    (HEADER + ",sku\n", "bad header (repeated sku)"),
    ("\n" + HEADER + "\n", "bad header (missing " + ", ".join(COLUMNS) + ")"),
    ("name;price\nPen;1\n", ("bad header (missing slug, name, description, category, active, variant, "
                            "sku, price, stock; unknown 'name;price')")),
])
def test_a_bad_header_writes_nothing(app, runner, tmp_path, content, message):
    path = tmp_path / "catalogue.csv"
    path.write_text(content, encoding="utf-8")

    result = run_import(runner, path)

    assert result.exit_code == 1
    assert f"Error: {path}: {message}" in result.output
    assert count(app, Product) == 0


def test_a_file_that_is_not_utf8_writes_nothing(app, runner, tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_bytes((HEADER + "\n,Good,,,,,,1,1\n,Caf\xe9,,,,,,1,1\n").encode("latin-1"))

    result = run_import(runner, path)

    assert result.exit_code == 1
    assert "the file is not UTF-8 text" in result.output
    assert count(app, Product) == 0


def test_a_field_too_large_for_csv_writes_nothing(app, runner, tmp_path):
    path = write_csv(tmp_path / "catalogue.csv", [row(name="Small"),
                                                  row(name="Huge", description="x" * 200_000)])

    result = run_import(runner, path)

    assert result.exit_code == 1
    assert "line 3: not valid CSV (field larger than field limit" in result.output
    assert count(app, Product) == 0


def test_a_missing_file_is_an_error(app, runner, tmp_path):
    result = run_import(runner, tmp_path / "nope.csv")
    assert result.exit_code == 1
    assert f"Error: Cannot read {tmp_path / 'nope.csv'}: No such file or directory" in result.output
    assert count(app, Product) == 0


def test_a_header_only_file_imports_nothing(app, runner, tmp_path):
    result = run_import(runner, write_csv(tmp_path / "catalogue.csv", []))
    assert result.exit_code == 0
    assert output_lines(result) == ["0 created, 0 updated, 0 skipped"]


def test_a_file_of_bad_rows_imports_nothing(app, runner, tmp_path):
    result = run_import(runner, write_csv(tmp_path / "catalogue.csv", [row(price="?")]))
    assert result.exit_code == 0
    assert output_lines(result) == ["0 created, 0 updated, 1 skipped",
                                    "line 2: price '?' is not an amount of money"]
    assert count(app, Product) == 0


# --- exporting -----------------------------------------------------------------------------


def make_catalogue(app: Any) -> None:
    """Products made through the ORM, as the admin screens would, covering what a file must
    carry: inactive, no category, a category whose slug is not its name's, several variants,
    no SKU, text with commas, quotes and line breaks, non-ASCII."""
    with app.app_context(), transaction() as session:
        prints = Category(name="Prints & Posters", slug="prints")
        session.add_all([
            Product(name="City, \"Night\"", slug="city-night", category=prints,
                    description="Line one,\nline \"two\"\r\n\u2014 ünïcode", variants=[
                        Variant(label="A4", sku="CITY-A4", price=Decimal("12.50"), stock=3),
                        Variant(label="A3", sku="CITY-A3", price=Decimal("20.00"), stock=0),
                    ]),
            Product(name="Archive", slug="archive", active=False, variants=[
                Variant(label="", sku=None, price=Decimal("0.00"), stock=0)]),
            Product(name="Zine", slug="zine", category=prints, variants=[
                Variant(label="", sku="ZINE", price=Decimal("1234567.89"), stock=2_000_000)]),
            Product(name="Draft without variants", slug="draft"),
        ])


def run_export(runner: Any, path: Path) -> Any:
    result = runner.invoke(args=["export-products", str(path)])
    assert result.exit_code == 0, result.output
    return result


def test_export_writes_one_row_per_variant(app, runner, tmp_path):
    make_catalogue(app)
    path = tmp_path / "export.csv"

    result = run_export(runner, path)

    assert output_lines(result) == [f"Exported 4 variants of 3 products to {path}.",
                                    "Left out 1 products without variants."]
    with path.open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == [
            list(COLUMNS),
            ["archive", "Archive", "", "", "false", "", "", "0.00", "0"],
            ["city-night", "City, \"Night\"", "Line one,\nline \"two\"\r\n\u2014 ünïcode",
             "Prints & Posters", "true", "A4", "CITY-A4", "12.50", "3"],
            ["city-night", "City, \"Night\"", "Line one,\nline \"two\"\r\n\u2014 ünïcode",
             "Prints & Posters", "true", "A3", "CITY-A3", "20.00", "0"],
            ["zine", "Zine", "", "Prints & Posters", "true", "", "ZINE", "1234567.89", "2000000"],
        ]


def test_export_then_import_round_trips(app, runner, tmp_path):
    make_catalogue(app)
    before = catalogue(app)
    exported = tmp_path / "export.csv"
    run_export(runner, exported)

    # Re-importing the export over the same data matches every variant and changes nothing.
    result = run_import(runner, exported)
    assert output_lines(result) == ["0 created, 0 updated, 4 unchanged, 0 skipped"]
    assert catalogue(app) == before
    assert count(app, Category) == 1  # found by name, though its slug is not slugify(name)

    # Into an empty catalogue: the same products, variants and values.
    with app.app_context(), transaction() as session:
        for model in (Variant, Product, Category):
            session.execute(delete(model))
    result = run_import(runner, exported)
    assert output_lines(result) == ["4 created, 0 updated, 0 skipped"]
    assert catalogue(app) == before
    again = tmp_path / "again.csv"
    run_export(runner, again)
    assert again.read_bytes() == exported.read_bytes()


def test_export_to_an_unwritable_path_is_an_error(app, runner, tmp_path):
    result = runner.invoke(args=["export-products", str(tmp_path / "missing-dir" / "out.csv")])
    assert result.exit_code == 1
    assert "Error: Cannot write" in result.output


# --- large files ---------------------------------------------------------------------------


def large_file(path: Path, products: int, *, price: str = "10.00") -> Path:
    rows = [row(name=f"Product {number}", category=f"Category {number % 7}", variant=size,
                sku=f"P{number}-{size}", price=price, stock=str(number % 50))
            for number in range(products) for size in ("S", "M", "L")]
    return write_csv(path, rows)


def test_a_large_file_uses_bulk_statements(app, runner, tmp_path):
    path = large_file(tmp_path / "large.csv", 1000)

    with count_statements() as counted:
        result = run_import(runner, path)

    assert result.exit_code == 0, result.output
    assert output_lines(result) == ["3000 created, 0 updated, 0 skipped"]
    assert counted.count < 100, counted.count  # a few per chunk of 500 rows, not one per row
    assert "Importing products" in result.stderr  # the progress bar's label, on stderr
    assert count(app, Variant) == 3000
    assert count(app, Product) == 1000
    assert count(app, Category) == 7

    with count_statements() as counted:
        result = run_import(runner, large_file(tmp_path / "large.csv", 1000, price="11.00"))
    assert output_lines(result) == ["0 created, 3000 updated, 0 skipped"]
    assert counted.count < 100, counted.count
    with app.app_context():
        assert set(db.session.scalars(select(Variant.price).distinct())) == {Decimal("11.00")}


def test_a_refused_row_in_a_large_file_costs_only_its_chunk(app, runner, tmp_path):
    assert run_import(runner, write_csv(tmp_path / "existing.csv", [
        row(name="Existing", sku="P500-S")])).exit_code == 0

    with count_statements() as counted:
        result = run_import(runner, large_file(tmp_path / "large.csv", 1000))

    # Product 500's "S" is data row 1500 (line 1502), so only the 4th chunk of 500 is replayed
    # row by row; the others still go in bulk.
    assert output_lines(result) == ["2999 created, 0 updated, 1 skipped",
                                    "line 1502: SKU 'P500-S' is already used by another variant"]
    assert count(app, Variant) == 3000  # 2999 imported plus the existing one
    assert count(app, Product) == 1001
    assert counted.count < 100 + 5 * 500, counted.count


def test_import_rows_reports_progress(app):
    rows = catalog_io.read_csv(io.StringIO(HEADER + "\n" + "".join(
        f",Pen {number},,,,,,1,1\n" for number in range(1200))))
    steps: list[int] = []
    with app.app_context():
        result = catalog_io.import_rows(rows, progress=steps.append)
    assert (result.created, result.updated, result.skipped) == (1200, 0, [])
    assert steps == [500, 500, 200]


def test_import_products_reads_and_imports_in_one_call(app):
    with app.app_context():
        result = catalog_io.import_products(io.StringIO(HEADER + "\n,Pen,,,,,,1,1\n,Ink,,,,,,x,1\n"))
    assert result.summary == "1 created, 0 updated, 1 skipped"
    assert result.skipped == [(3, "price 'x' is not an amount of money")]


def test_other_refusals_are_reported_in_the_databases_words():
    checked = catalog_io._check_row(catalog_io.RawRow(2, row()))
    error = IntegrityError("INSERT ...", {}, Exception("CHECK constraint failed: x\nDETAIL: more"))
    assert catalog_io._refusal(error, checked) == "refused by the database: CHECK constraint failed: x"


# --- the audit trail ---------------------------------------------------------------------------


def audit_trail(app: Any) -> list[tuple[str, str, str, dict[str, Any], str, Any]]:
    from blog.admin.models import AuditEvent
    with app.app_context():
        return [(e.entity_type, e.entity_id, e.action, e.changes, e.note, e.actor_id)
                for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_import_is_audited_and_counts_only_real_changes(app, runner, tmp_path):
    first = write_csv(tmp_path / "first.csv", [
        row(name="Mug", category="Kitchen", variant="White", sku="MUG-W", price="8.00", stock="5"),
        row(name="Mug", category="Kitchen", variant="Black", sku="MUG-B", price="8.00", stock="5"),
    ])
    assert output_lines(run_import(runner, first)) == ["2 created, 0 updated, 0 skipped"]
    trail = audit_trail(app)
    assert [(kind, key, action) for kind, key, action, *_ in trail] == [
        ("product", "mug", "create"), ("variant", "MUG-W", "create"), ("variant", "MUG-B", "create")]
    assert trail[1][3] == {"label": [None, "White"], "sku": [None, "MUG-W"], "price": [None, "8.00"],
                           "stock": [None, 5]}
    assert all(note == "CSV import" and actor is None for *_, note, actor in trail)

    # The same file again: nothing changes, nothing is written, nothing is audited.
    assert output_lines(run_import(runner, first)) == ["0 created, 0 updated, 2 unchanged, 0 skipped"]
    assert len(audit_trail(app)) == 3

    # One stock count changed: one update, with before and after.
    second = write_csv(tmp_path / "second.csv", [
        row(slug="mug", name="Mug", category="Kitchen", variant="White", sku="MUG-W", price="8.00",
            stock="2"),
        row(slug="mug", name="Mug", category="Kitchen", variant="Black", sku="MUG-B", price="8.00",
            stock="5"),
    ])
    assert output_lines(run_import(runner, second)) == ["0 created, 1 updated, 1 unchanged, 0 skipped"]
    assert audit_trail(app)[3:] == [("variant", "MUG-W", "update", {"stock": [5, 2]}, "CSV import", None)]

    # A product field (on the row that sets them) counts as an update of that row.
    third = write_csv(tmp_path / "third.csv", [
        row(slug="mug", name="Mug", category="Tableware", active="false", variant="White", sku="MUG-W",
            price="8.00", stock="2"),
    ])
    assert output_lines(run_import(runner, third)) == ["0 created, 1 updated, 0 skipped"]
    assert audit_trail(app)[4:] == [("product", "mug", "update",
                                     {"active": [True, False], "category": ["Kitchen", "Tableware"]},
                                     "CSV import", None)]


def test_audit_rolls_back_with_a_failed_import(app, runner, tmp_path):
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")
    from blog.shop.catalog_io import catalog_imported
    catalog_imported.connect(fail)
    try:
        path = write_csv(tmp_path / "p.csv", [row(name="Mug", price="8.00", stock="5")])
        result = run_import(runner, path)
    finally:
        catalog_imported.disconnect(fail)
    assert result.exit_code != 0
    assert audit_trail(app) == [] and count(app, Product) == 0


def test_products_and_categories_in_other_scripts(app, client, runner, tmp_path):
    from urllib.parse import quote

    from flask import url_for

    from tests.conftest import text_of
    path = write_csv(tmp_path / "unicode.csv", [
        row(name="Κούπα", category="Посуда", price="8.00", stock="5"),
        row(slug="マグカップ", name="マグカップ", category="Посуда", price="9.00", stock="5"),
        row(name="!!!", price="1.00", stock="1"),
    ])
    assert output_lines(run_import(runner, path)) == ["3 created, 0 updated, 0 skipped"]
    with app.app_context():
        slugs = set(db.session.scalars(select(Product.slug)))
        category = db.session.scalar(select(Category.slug))
    assert {"κούπα", "マグカップ"} <= slugs and "product" not in slugs
    assert category == "посуда"
    with app.test_request_context():
        assert url_for("shop.product", slug="κούπα") == "/shop/products/" + quote("κούπα")
    for slug, name in (("κούπα", "Κούπα"), ("マグカップ", "マグカップ")):
        assert name in text_of(client.get("/shop/products/" + quote(slug)))
    listing = text_of(client.get("/shop/?category=" + quote("посуда")))
    assert "Κούπα" in listing and "マグカップ" in listing

    # The export imports back unchanged, slugs and all.
    exported = tmp_path / "export.csv"
    run_export(runner, exported)
    assert output_lines(run_import(runner, exported)) == ["0 created, 0 updated, 3 unchanged, 0 skipped"]
