"""Admin forms, and the mapping from what they hold to what the admin services take.
Filters on list pages are plain GET query arguments, not forms."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    FieldList,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import HiddenInput

from blog.admin.products import ProductInput, VariantInput, several_variants, single_variant
from blog.admin.services import AdminError, DiscountValues, ShippingValues
from blog.database import CENT
from blog.forms import MAX_MONEY, IdField, MoneyField, SiteForm, SiteSubForm
from blog.shop.models import Discount, OrderStatus, Product
from blog.shop.pricing import parse_money


class OrderStatusForm(SiteForm):
    status = SelectField("New status", choices=[SelectChoice(s, s.capitalize()) for s in OrderStatus.ALL],
                         validators=[InputRequired()])


def whole_cents(form: Any, field: Any) -> None:
    """An amount of money has at most two decimal places (no silent rounding)."""
    if field.data is not None and field.data != field.data.quantize(Decimal("0.01")):
        raise ValidationError("Use at most two decimal places.")


def _count(text: str | None) -> int | None:
    """A hidden field's whole number, or None when it is missing or not one (an old form:
    the save then sets the stock as given)."""
    text = (text or "").strip()
    return int(text) if text.isdecimal() and len(text) <= 10 else None


def _cents(amount: Decimal | None) -> Decimal | None:
    return amount.quantize(CENT) if amount is not None else None


def _utc(moment: datetime | None) -> datetime | None:
    """A time typed in the form (labelled UTC) as an aware datetime."""
    return moment.replace(tzinfo=UTC) if moment is not None else None


def _money(label: str, *, required: bool = True, minimum: str = "0") -> MoneyField:
    return MoneyField(label, validators=[
        InputRequired() if required else Optional(),
        NumberRange(min=Decimal(minimum), max=MAX_MONEY), whole_cents])


class DiscountForm(SiteForm):
    code = StringField("Code", validators=[
        DataRequired(), Length(max=40),
        Regexp(r"^[A-Za-z0-9_-]+$", message="Use letters, digits, - and _ only.")])
    kind = RadioField("Kind", choices=[SelectChoice("percentage", "Percentage off"),
                                       SelectChoice("fixed", "Fixed amount off")],
                      default="percentage", validators=[InputRequired()])
    value = _money("Value (percent, or amount)", minimum="0.01")
    active = BooleanField("Active", default=True)
    starts_at = DateTimeLocalField("Valid from (UTC)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    ends_at = DateTimeLocalField("Valid until (UTC)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    usage_limit = IntegerField("Usage limit", validators=[Optional(), NumberRange(min=1, max=10_000_000)])
    per_customer_limit = IntegerField("Uses per customer", validators=[
        Optional(), NumberRange(min=1, max=10_000_000)])
    min_subtotal = _money("Minimum subtotal", required=False)

    @classmethod
    def of(cls, discount: Discount | None) -> DiscountForm:
        """The form for ``discount`` (None: a new code): what was submitted, or else the
        code's values, its percent or amount shown as the one ``value``."""
        form = cls(obj=discount)
        if discount is not None and not form.is_submitted():
            form.kind.data = discount.kind
            form.value.data = discount.percent if discount.kind == "percentage" else discount.amount
        return form

    def discount_values(self) -> DiscountValues:
        """The validated form as the values of a code: the code upper-case, times in UTC."""
        return DiscountValues(
            code=self.code.data.strip().upper(), kind=self.kind.data,
            value=self.value.data.quantize(CENT), active=self.active.data,
            starts_at=_utc(self.starts_at.data), ends_at=_utc(self.ends_at.data),
            usage_limit=self.usage_limit.data, min_subtotal=_cents(self.min_subtotal.data),
            per_customer_limit=self.per_customer_limit.data)

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):
            return False
        ok = True
        if self.kind.data == "percentage" and self.value.data > 100:
            self.value.errors.append("A percentage is at most 100.")
            ok = False
        if self.starts_at.data and self.ends_at.data and self.ends_at.data <= self.starts_at.data:
            self.ends_at.errors.append("The end must come after the start.")
            ok = False
        return ok


class ShippingForm(SiteForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    price = _money("Price")
    active = BooleanField("Active", default=True)

    def shipping_values(self) -> ShippingValues:
        """The validated form as the values of a shipping method."""
        return ShippingValues(name=self.name.data.strip(), price=self.price.data.quantize(CENT),
                              active=self.active.data)


class VariantRowForm(SiteSubForm):
    """One variant in the product form (no CSRF of its own: it is part of ProductForm)."""

    id = IdField(widget=HiddenInput(), validators=[Optional()])
    label = StringField("Label", validators=[Optional(), Length(max=80)])
    sku = StringField("SKU", validators=[Optional(), Length(max=64)])
    price = _money("Price", required=False)
    stock = IntegerField("Stock", validators=[Optional(), NumberRange(min=0, max=2_147_483_647)])
    #: The stock the form showed, so the save is relative to it (see VariantInput.stock_seen).
    stock_seen = HiddenField()

    def is_filled(self) -> bool:
        """Whether the admin used this row (blank rows are spares, ignored)."""
        return bool((self.label.data or "").strip()) or self.price.data is not None

    def is_complete(self) -> bool:
        return self.price.data is not None and self.stock.data is not None

    def variant_input(self) -> VariantInput:
        """The row as a variant; ``id`` names an existing one (only its own product's is
        accepted, by the service)."""
        return VariantInput(self.id.data, self.label.data or "",
                            self.sku.data or "", self.price.data.quantize(CENT), self.stock.data,
                            _count(self.stock_seen.data))


class ProductForm(SiteForm):
    """A product. ``price`` and ``stock`` are its single variant's; a product with several
    variants edits them in the ``variants`` rows instead."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=20_000)])
    category = StringField("Category", validators=[Length(max=80)])
    active = BooleanField("For sale", default=True)
    price = _money("Price", required=False)
    stock = IntegerField("Stock", validators=[Optional(), NumberRange(min=0, max=2_147_483_647)])
    stock_seen = HiddenField()
    image = FileField("Image (JPEG, PNG or WebP)")
    variants = FieldList(FormField(VariantRowForm), min_entries=0, max_entries=50)
    reason = StringField("Reason for a stock change", validators=[Length(max=200)])

    #: Empty variant rows offered below the filled ones, for adding variants.
    SPARE_ROWS = 2

    @classmethod
    def of(cls, product: Product | None) -> ProductForm:
        """The form for ``product`` (None: a new one): what was submitted, or else the
        product's values, its variants as rows when it has several."""
        form = cls()
        if not form.is_submitted():
            form._show(product)
        return form

    def _show(self, product: Product | None) -> None:
        if product is not None:
            self.name.data, self.description.data = product.name, product.description
            self.category.data = product.category.name if product.category else ""
            self.active.data = product.active
            if len(product.variants) == 1:
                self.price.data, self.stock.data = product.variants[0].price, product.variants[0].stock
                self.stock_seen.data = str(product.variants[0].stock)
            else:
                for variant in product.variants:
                    self.variants.append_entry({"id": variant.id, "label": variant.label,
                                                "sku": variant.sku or "", "price": variant.price,
                                                "stock": variant.stock, "stock_seen": str(variant.stock)})
        for _ in range(self.SPARE_ROWS):
            self.variants.append_entry()

    def _filled_rows(self) -> list[VariantRowForm]:
        return [entry.form for entry in self.variants if entry.form.is_filled()]

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields, then the variants: every filled row complete, or else (no row
        filled) the top-level price and stock given."""
        if not super().validate(extra_validators):
            return False
        rows = self._filled_rows()
        if rows and not all(row.is_complete() for row in rows):
            self.form_errors.append("Every variant needs a price and a stock.")
            return False
        if not rows and (self.price.data is None or self.stock.data is None):
            self.price.errors.append("Give the price and the stock.")
            return False
        return True

    def image_upload(self) -> FileStorage | None:
        """The image file chosen, if any."""
        upload = self.image.data
        return upload if isinstance(upload, FileStorage) and upload.filename else None

    def product_input(self, product: Product | None) -> ProductInput:
        """The validated form as ``product``'s new values (None: a new product). Its
        variants are the filled rows, or else the single variant of the top-level price and
        stock."""
        rows = [row.variant_input() for row in self._filled_rows()]
        variants = (several_variants(product, rows) if rows else
                    [single_variant(product, self.price.data.quantize(CENT), self.stock.data,
                                    _count(self.stock_seen.data))])
        return ProductInput(name=self.name.data, description=self.description.data or "",
                            category=self.category.data or "", active=self.active.data,
                            variants=variants, reason=self.reason.data or "")


class PageForm(SiteForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    slug = StringField("Address", validators=[Optional(), Length(max=100)])
    body = TextAreaField("Text (Markdown)", validators=[DataRequired(), Length(max=100_000)],
                         render_kw={"rows": 16})
    place = RadioField("Linked from", choices=[SelectChoice("none", "Nowhere (only its address)"),
                                               SelectChoice("nav", "The navigation"),
                                               SelectChoice("footer", "The footer")],
                       default="none")
    position = IntegerField("Order", default=0,
                            validators=[InputRequired(), NumberRange(min=-1000, max=1000)])


class SettingsForm(SiteForm):
    title = StringField("Site title", validators=[DataRequired(), Length(max=100)])
    tagline = StringField("Tagline", validators=[Optional(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=300)])
    footer = TextAreaField("Footer text", validators=[Optional(), Length(max=500)])
    social_links = TextAreaField("Social links", validators=[Optional(), Length(max=4000)],
                                 render_kw={"rows": 4})


class RefundForm(SiteForm):
    """Units per order line come as ``qty-<line id>`` fields (as many as the order has)."""

    shipping = StringField("Shipping to refund", default="0")
    reason = StringField("Reason (the customer sees it)", validators=[Optional(), Length(max=500)])
    restock = BooleanField("Put the refunded items back in stock")

    def quantities(self, lines: list[tuple[Any, Any]]) -> dict[int, int]:
        """``{line id: units}`` from the ``qty-<id>`` fields; raises AdminError for a value
        that is not a whole number."""
        from flask import request

        chosen: dict[int, int] = {}
        for item, _share in lines:
            raw = (request.form.get(f"qty-{item.id}") or "0").strip()
            if not raw.isdigit() or len(raw) > 6:
                raise AdminError(f"{item.description}: give a whole number of units.")
            if int(raw):
                chosen[item.id] = int(raw)
        return chosen

    def shipping_amount(self) -> Decimal:
        """The shipping to refund; raises AdminError for text that is not an amount."""
        try:
            return parse_money(self.shipping.data or "0")
        except ValueError as error:
            raise AdminError("Give the shipping to refund as an amount, such as 5.00.", "shipping") from error


class SubscriberImportForm(SiteForm):
    file = FileField("CSV file (an “email” column; a “status” column may say “confirmed”)")
    opted_in = BooleanField("The addresses marked “confirmed” agreed to get this newsletter "
                            "(otherwise they must confirm first)")

    def upload(self) -> FileStorage | None:
        data = self.file.data
        return data if isinstance(data, FileStorage) and data.filename else None
