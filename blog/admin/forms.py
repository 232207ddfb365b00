"""Admin forms. Filters on list pages are plain GET query arguments, not forms."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    FieldList,
    Form,
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

from blog.shop.models import OrderStatus


class OrderStatusForm(FlaskForm):
    status = SelectField("New status", choices=[SelectChoice(s, s.capitalize()) for s in OrderStatus.ALL],
                         validators=[InputRequired()])


def whole_cents(form: Any, field: Any) -> None:
    """An amount of money has at most two decimal places (no silent rounding)."""
    if field.data is not None and field.data != field.data.quantize(Decimal("0.01")):
        raise ValidationError("Use at most two decimal places.")


def _money(label: str, *, required: bool = True, minimum: str = "0") -> DecimalField:
    return DecimalField(label, places=2, rounding=None, validators=[
        InputRequired() if required else Optional(),
        NumberRange(min=Decimal(minimum), max=Decimal("9999999.99")), whole_cents])


class DiscountForm(FlaskForm):
    code = StringField("Code", validators=[
        DataRequired(), Length(max=40),
        Regexp(r"^[A-Za-z0-9_-]+$", message="Use letters, digits, - and _ only.")])
    kind = RadioField("Kind", choices=[SelectChoice("percentage", "Percentage off"),
                                       SelectChoice("fixed", "Fixed amount off")],
                      default="percentage", validators=[InputRequired()])
    value = DecimalField("Value (percent, or amount)", places=2, rounding=None, validators=[
        InputRequired(), NumberRange(min=Decimal("0.01"), max=Decimal("9999999.99")), whole_cents])
    active = BooleanField("Active", default=True)
    starts_at = DateTimeLocalField("Valid from (UTC)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    ends_at = DateTimeLocalField("Valid until (UTC)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    usage_limit = IntegerField("Usage limit", validators=[Optional(), NumberRange(min=1, max=10_000_000)])
    min_subtotal = _money("Minimum subtotal", required=False)

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


class ShippingForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    price = _money("Price")
    active = BooleanField("Active", default=True)


class VariantRowForm(Form):
    """One variant in the product form (no CSRF of its own: it is part of ProductForm)."""

    id = HiddenField()
    label = StringField("Label", validators=[Optional(), Length(max=80)])
    sku = StringField("SKU", validators=[Optional(), Length(max=64)])
    price = _money("Price", required=False)
    stock = IntegerField("Stock", validators=[Optional(), NumberRange(min=0, max=2_147_483_647)])


class ProductForm(FlaskForm):
    """A product. ``price`` and ``stock`` are its single variant's; a product with several
    variants edits them in the ``variants`` rows instead."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=20_000)])
    category = StringField("Category", validators=[Length(max=80)])
    active = BooleanField("For sale", default=True)
    price = _money("Price", required=False)
    stock = IntegerField("Stock", validators=[Optional(), NumberRange(min=0, max=2_147_483_647)])
    image = FileField("Image (JPEG, PNG or WebP)")
    variants = FieldList(FormField(VariantRowForm), min_entries=0, max_entries=50)
    reason = StringField("Reason for a stock change", validators=[Length(max=200)])
