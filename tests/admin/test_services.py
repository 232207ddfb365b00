"""The admin's services and forms apart from the pages that use them: saving discounts and
shipping methods, the product form's mapping to variants, image files following their
product, the admin page size, and the list macro's filters and empty rows."""

from __future__ import annotations

import html
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from blog.admin import services
from blog.admin.forms import ProductForm
from blog.admin.models import AuditEvent
from blog.admin.products import VariantInput, several_variants, single_variant
from blog.admin.services import AdminError, DiscountValues, ShippingValues
from blog.config import DefaultConfig
from blog.extensions import db
from blog.images import thumbnail_name
from blog.shop.models import FixedAmountDiscount, PercentageDiscount, Product, Variant
from tests.conftest import csrf_token, png


@pytest.fixture
def config_overrides(uploads: Path) -> dict[str, Any]:
    # Never write into the repository's instance/ folder.
    return {"UPLOAD_FOLDER": str(uploads)}


@pytest.fixture
def admin(auth: Any, make_user: Any) -> Any:
    user = make_user("root", admin=True)
    auth.login("root")
    return user


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def audit_actions(app: Flask, entity_type: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.entity_type == entity_type).order_by(AuditEvent.id)))


# --- discounts and shipping ------------------------------------------------------------------


def discount(**changes: Any) -> DiscountValues:
    values: dict[str, Any] = {"code": "SPRING", "kind": "percentage", "value": Decimal("15.00"),
                              "active": True, "starts_at": None, "ends_at": None,
                              "usage_limit": None, "min_subtotal": None}
    return DiscountValues(**(values | changes))


def test_a_new_discount_is_of_the_subclass_its_kind_names(app: Flask) -> None:
    with app.test_request_context():
        ten = services.save_discount(None, discount(code="TEN", value=Decimal("10.00")))
        five = services.save_discount(None, discount(code="FIVE", kind="fixed", value=Decimal("5.00")))
        assert isinstance(ten, PercentageDiscount) and (ten.percent, ten.amount) == (Decimal("10.00"), None)
        assert isinstance(five, FixedAmountDiscount)
        assert (five.percent, five.amount) == (None, Decimal("5.00"))
        assert [d.code for d in services.discount_list()] == ["FIVE", "TEN"]


def test_an_existing_discount_keeps_its_kind(app: Flask) -> None:
    with app.test_request_context():
        five = services.save_discount(None, discount(code="FIVE", kind="fixed", value=Decimal("5.00")))
        with pytest.raises(AdminError) as caught:
            services.save_discount(five, discount(code="FIVE", value=Decimal("7.00")))
        assert caught.value.field == "kind" and "cannot change" in caught.value.message
        db.session.expire_all()
        assert (five.kind, five.amount, five.percent) == ("fixed", Decimal("5.00"), None)
    assert audit_actions(app, "discount") == ["create"]


def test_save_shipping_creates_edits_and_refuses_a_taken_name(app: Flask) -> None:
    with app.test_request_context():
        courier = services.save_shipping(None, ShippingValues("Courier", Decimal("12.00"), True))
        services.save_shipping(courier, ShippingValues("Courier", Decimal("13.50"), False))
        services.save_shipping(None, ShippingValues("Post", Decimal("5.00"), True))
        with pytest.raises(AdminError) as caught:
            services.save_shipping(None, ShippingValues("Post", Decimal("1.00"), True))
        assert caught.value.field == "name"
        assert [(m.name, m.price, m.active) for m in services.shipping_methods()] == [
            ("Post", Decimal("5.00"), True), ("Courier", Decimal("13.50"), False)]
    assert audit_actions(app, "shipping") == ["create", "update", "create"]


# --- the product form's variants ---------------------------------------------------------------


def one_variant_product() -> Product:
    return Product(name="Notes", variants=[Variant(id=7, label="A5", sku="NB-A5",
                                                   price=Decimal("9.00"), stock=3)])


def test_price_and_stock_alone_edit_the_only_variant() -> None:
    assert single_variant(one_variant_product(), Decimal("10.00"), 4) == VariantInput(
        7, "A5", "NB-A5", Decimal("10.00"), 4)
    assert single_variant(None, Decimal("10.00"), 4) == VariantInput(None, "", "", Decimal("10.00"), 4)
    two = Product(name="Shirt", variants=[Variant(id=1, label="M"), Variant(id=2, label="L")])
    assert single_variant(two, Decimal("10.00"), 4).id is None


def test_new_rows_of_a_single_variant_product_reuse_its_variant_first() -> None:
    rows = [VariantInput(None, "A5", "", Decimal("9.00"), 3),
            VariantInput(None, "A4", "", Decimal("12.00"), 2)]
    assert [row.id for row in several_variants(one_variant_product(), rows)] == [7, None]
    assert rows[0].id is None  # the caller's rows are left as they were
    assert several_variants(None, rows) == rows
    named = [VariantInput(7, "A5", "", Decimal("9.00"), 3), rows[1]]
    assert several_variants(one_variant_product(), named) == named


def test_product_form_maps_filled_rows_and_skips_blank_ones(app: Flask) -> None:
    data = {"name": "Shirt", "description": "", "category": "Clothes", "active": "y", "price": "",
            "stock": "", "reason": "",
            "variants-0-id": "12", "variants-0-label": "M", "variants-0-sku": "SH-M",
            "variants-0-price": "20", "variants-0-stock": "4",
            "variants-1-id": "", "variants-1-label": "", "variants-1-sku": "",
            "variants-1-price": "", "variants-1-stock": "",
            "variants-2-id": "", "variants-2-label": "L", "variants-2-sku": "",
            "variants-2-price": "22.5", "variants-2-stock": "0"}
    with app.test_request_context(method="POST", data=data):
        form = ProductForm(meta={"csrf": False})
        assert form.validate(), form.errors
        product = form.product_input(None)
    assert (product.name, product.category, product.active) == ("Shirt", "Clothes", True)
    assert product.variants == [VariantInput(12, "M", "SH-M", Decimal("20.00"), 4),
                                VariantInput(None, "L", "", Decimal("22.50"), 0)]


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"variants-0-label": "M"}, None, "Every variant needs a price and a stock."),
    ({"price": "3"}, "price", "Give the price and the stock."),
])
def test_product_form_needs_complete_variants(app: Flask, fields: dict[str, str], field: str | None,
                                              message: str) -> None:
    data = {"name": "Shirt", "price": "", "stock": "", **fields}
    with app.test_request_context(method="POST", data=data):
        form = ProductForm(meta={"csrf": False})
        assert not form.validate()
        assert (form.form_errors if field is None else form[field].errors) == [message]


def test_a_product_of_several_variants_is_edited_in_its_rows(app: Flask, client: Any, admin: Any,
                                                             make_product: Any) -> None:
    shirt = make_product("Shirt", [("M", "20.00", 4), ("L", "22.00", 0)])
    mug = make_product("Mug")
    path = f"/admin/products/{shirt.id}/edit"
    page = client.get(path).get_data(as_text=True)
    assert 'name="price"' not in page  # no single price for a product of several variants
    for n, variant in enumerate(shirt.variants):
        assert f'name="variants-{n}-id" type="hidden" value="{variant.id}"' in page
        assert f'name="variants-{n}-label" type="text" value="{variant.label}"' in page
    assert 'name="variants-3-label" type="text" value=""' in page  # two spare rows
    response = client.post(path, data={
        "csrf_token": csrf_token(client, path), "name": "Shirt", "active": "y", "reason": "",
        "variants-0-id": str(mug.variants[0].id), "variants-0-label": "M", "variants-0-price": "1",
        "variants-0-stock": "1"})
    assert "A variant of another product was submitted." in text_of(response)


# --- image files follow their product ----------------------------------------------------------


def stored(uploads: Path) -> set[str]:
    return {path.name for path in uploads.iterdir()} if uploads.exists() else set()


def post_product(client: Any, path: str, image: bytes | None = None, **fields: str) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf_token(client, path), "name": "Print",
                            "description": "", "category": "", "active": "y", "price": "10.00",
                            "stock": "5", "reason": "", **fields}
    if image is not None:
        data["image"] = (io.BytesIO(image), "print.png")
    return client.post(path, data=data, content_type="multipart/form-data")


def image_of(app: Flask) -> str | None:
    with app.app_context():
        return db.session.scalar(select(Product.image))


def test_image_files_follow_the_product(app: Flask, client: Any, admin: Any, uploads: Path) -> None:
    assert post_product(client, "/admin/products/new", png("red")).status_code == 302
    first = image_of(app)
    assert first and stored(uploads) == {first, thumbnail_name(first)}
    with app.app_context():
        path = f"/admin/products/{db.session.scalar(select(Product.id))}/edit"

    # A save that fails keeps the old image and leaves no new file behind.
    assert "Say why the stock changed" in text_of(post_product(client, path, png("blue"), stock="4"))
    assert image_of(app) == first and stored(uploads) == {first, thumbnail_name(first)}
    assert "not a JPEG, PNG or WebP" in text_of(post_product(client, path, b"not an image"))
    assert stored(uploads) == {first, thumbnail_name(first)}

    # A save that commits replaces the files; a save without an upload keeps them.
    assert post_product(client, path, png("green"), stock="4", reason="Counted").status_code == 302
    second = image_of(app)
    assert second and second != first and stored(uploads) == {second, thumbnail_name(second)}
    assert post_product(client, path, name="Print II", stock="4").status_code == 302
    assert image_of(app) == second and stored(uploads) == {second, thumbnail_name(second)}

    # Deleting the product (never ordered) deletes its files.
    client.post(path.replace("/edit", "/delete"),
                data={"csrf_token": csrf_token(client, "/admin/products")})
    assert image_of(app) is None and stored(uploads) == set()


def test_too_large_image_is_a_message_on_the_form_with_what_was_typed(
        app: Flask, client: Any, admin: Any, uploads: Path) -> None:
    """A 20 MB phone photo with the default limits: the form comes back with the limit beside
    the field and every other value kept (not a 413 page that loses them), nothing saved."""
    path = "/admin/products/new"
    data = {"csrf_token": csrf_token(client, path), "name": "Harbour at dusk",
            "description": "Giclée print, signed.", "category": "", "active": "y",
            "price": "42.50", "stock": "7", "reason": "",
            "image": FileStorage(io.BytesIO(b"\xff" * (20 * 1024 * 1024)), "IMG_0001.jpg",
                                 content_type="image/jpeg")}
    # Encoded in memory: the test client's own temporary file would never be closed.
    stream, length, boundary = stream_encode_multipart(data, use_tempfile=False)
    response = client.post(path, input_stream=stream, content_length=length,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 200
    page = text_of(response)
    assert "The image is larger than 5 MB." in page
    assert 'value="Harbour at dusk"' in page and "Giclée print, signed." in page
    assert 'value="42.50"' in page and 'value="7"' in page
    assert "Up to 5 MB." in page  # the limit is said before choosing, too
    with app.app_context():
        assert db.session.scalar(select(Product.id)) is None
    assert stored(uploads) == set()


# --- page size and the list macro ---------------------------------------------------------------


def test_admin_lists_have_their_own_page_size(app: Flask, client: Any, admin: Any, make_user: Any) -> None:
    assert app.config["ADMIN_PER_PAGE"] == DefaultConfig.ADMIN_PER_PAGE == 20
    make_user("bob")
    app.config["ADMIN_PER_PAGE"] = 1
    assert client.get("/admin/users?page=2").status_code == 200
    assert client.get("/admin/users?page=3").status_code == 404
    app.config.update(ADMIN_PER_PAGE=20, ORDERS_PER_PAGE=1)  # the customer's setting, not the admin's
    assert client.get("/admin/users?page=2").status_code == 404


def test_list_filters_show_the_current_choice(client: Any, admin: Any, make_product: Any) -> None:
    mug = make_product("Mug", category="Kitchen")
    page = client.get(f"/admin/products?q=mug&category={mug.category_id}&active=no").get_data(as_text=True)
    assert '<input type="search" id="q" name="q" value="mug">' in page
    assert f'<option value="{mug.category_id}" selected>Kitchen</option>' in page
    assert '<option value="no" selected>No</option>' in page
    assert '<td colspan="6" class="empty">No products match.</td>' in page  # Mug is for sale
    orders = client.get("/admin/orders?status=paid&status=bogus").get_data(as_text=True)
    assert '<option value="paid" selected>Paid</option>' in orders
    assert '<td colspan="5" class="empty">No orders match.</td>' in orders
    audit = client.get("/admin/audit?entity=nonsense").get_data(as_text=True)
    assert " selected" not in audit and '<option value="">Everything</option>' in audit
    assert '<p class="empty">No comments yet.</p>' in client.get("/admin/comments").get_data(as_text=True)
