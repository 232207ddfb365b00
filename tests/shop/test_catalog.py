"""The catalogue and the product pages: listing, search, filters, sort, pagination, variants
and a fixed number of SQL statements per page."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import create_product, page_statements, text_of
from tests.shop.conftest import fill_shop

# --- catalogue ------------------------------------------------------------------------------------


def test_empty_shop(client: Any) -> None:
    response = client.get("/shop/")
    assert response.status_code == 200
    assert "Nothing for sale yet." in text_of(response)


def test_catalogue_lists_active_products_with_price_and_stock(client: Any, make_product: Any) -> None:
    make_product("Field Notes", [("", "12.50", 10)], category="Books")
    make_product("Harbour Print", [("A4 matte", "25.00", 2), ("A3 gloss", "40.00", 0)],
                 category="Prints")
    make_product("Old Mug", [("", "8.00", 3)], active=False)
    make_product("Sold Shirt", [("M", "20.00", 0), ("L", "20.00", 0)])
    page = text_of(client.get("/shop/"))
    assert "Field Notes" in page and "$12.50" in page and "In stock" in page
    assert "from $25.00" in page and "Only 2 left" in page
    assert "Old Mug" not in page
    assert "Sold out" in page
    assert "from $20.00" not in page  # equal prices: no "from"


@pytest.mark.parametrize(("query", "expected"), [
    ("q=notes", ["Field Notes"]),
    ("category=prints", ["Harbour Print"]),
    ("sort=price_asc", ["Cheap Pin", "Field Notes", "Harbour Print"]),
    ("sort=price_desc", ["Harbour Print", "Field Notes", "Cheap Pin"]),
    ("sort=name", ["Cheap Pin", "Field Notes", "Harbour Print"]),
    ("sort=newest", ["Harbour Print", "Field Notes", "Cheap Pin"]),
    ("sort=DROP TABLE", ["Harbour Print", "Field Notes", "Cheap Pin"]),  # unknown: newest
    ("q=100%25", []),
])
def test_catalogue_search_filter_and_sort(client: Any, make_product: Any, query: str,
                                          expected: list[str]) -> None:
    make_product("Cheap Pin", [("", "3.00", 10)])
    make_product("Field Notes", [("", "12.50", 10)], category="Books",
                 description="A pocket notebook.")
    make_product("Harbour Print", [("A4", "25.00", 2), ("A3", "40.00", 1)], category="Prints")
    page = text_of(client.get(f"/shop/?{query}"))
    names = [name for name in ("Cheap Pin", "Field Notes", "Harbour Print") if name in page]
    assert sorted(names, key=page.index) == expected


def test_unknown_category_is_404(client: Any) -> None:
    assert client.get("/shop/?category=nope").status_code == 404


def test_catalogue_pagination(app: Flask, client: Any, make_product: Any) -> None:
    app.config["PRODUCTS_PER_PAGE"] = 2
    for number in range(5):
        make_product(f"Thing {number}")
    assert client.get("/shop/?page=3").status_code == 200
    assert client.get("/shop/?page=4").status_code == 404
    assert client.get("/shop/?page=0").status_code == 404
    second = text_of(client.get("/shop/?page=2&sort=name"))
    assert "Thing 2" in second and "Thing 3" in second and "Thing 0" not in second
    assert "sort=name" in second  # pagination links keep the sort


# --- product page ---------------------------------------------------------------------------------


def test_product_with_one_variant_has_no_choice(client: Any, make_product: Any) -> None:
    product = make_product("Field Notes", [("", "12.50", 2)])
    page = client.get(f"/shop/products/{product.slug}").get_data(as_text=True)
    assert 'name="variant_id"' not in page
    assert 'name="product_id"' in page and 'name="quantity"' in page
    assert "Only 2 left" in page and "$12.50" in page


def test_product_with_variants_offers_a_choice(client: Any, make_product: Any) -> None:
    product = make_product("Shirt", [("S", "20.00", 0), ("M", "20.00", 4), ("L", "22.00", 9)])
    page = text_of(client.get(f"/shop/products/{product.slug}"))
    assert '<select id="variant_id" name="variant_id"' in page
    assert page.count("<option") == 3
    assert "from $20.00" in page
    assert "disabled" in page.split("S —")[0].rsplit("<option", 1)[1]  # sold-out S is disabled


def test_sold_out_product_has_no_form(client: Any, make_product: Any) -> None:
    product = make_product("Gone", [("", "5.00", 0)])
    page = text_of(client.get(f"/shop/products/{product.slug}"))
    assert "Sold out" in page and "Add to cart" not in page


def test_inactive_product_is_404_but_admins_see_it(client: Any, auth: Any, make_user: Any,
                                                   make_product: Any) -> None:
    product = make_product("Retired", active=False)
    assert client.get(f"/shop/products/{product.slug}").status_code == 404
    make_user("bob")
    auth.login("bob")
    assert client.get(f"/shop/products/{product.slug}").status_code == 404
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    assert "Not for sale" in text_of(client.get(f"/shop/products/{product.slug}"))


def test_unknown_product_is_404(client: Any) -> None:
    assert client.get("/shop/products/nothing").status_code == 404


# --- statement counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/shop/", "/shop/?q=product&sort=price_desc",
                                  "/shop/?category=category-1&sort=name"])
def test_catalogue_statements_do_not_grow(app: Flask, client: Any, path: str) -> None:
    with app.app_context():
        fill_shop(2, 1)
    small = page_statements(client, path).count
    with app.app_context():
        fill_shop(12, 4, prefix="More product")
    assert page_statements(client, path).count == small == 3  # categories, count, products


def test_product_page_statements_do_not_grow(app: Flask, client: Any) -> None:
    with app.app_context():
        one = create_product("One")
        many = create_product("Many", [(f"V{v}", "10.00", 5) for v in range(15)])
    assert page_statements(client, f"/shop/products/{one.slug}").count == 2
    assert page_statements(client, f"/shop/products/{many.slug}").count == 2
