"""Shop forms. Field names are the public interface in DESIGN.md ("Shop")."""

from __future__ import annotations

from wtforms import HiddenField, IntegerField, RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from blog.forms import IdField, SiteForm, parse_id


class AddToCartForm(SiteForm):
    product_id = IdField("Product", validators=[InputRequired("Which product?")])
    #: Absent (or empty) for a product with one variant.
    variant_id = IdField("Option", validators=[Optional()])
    quantity = IntegerField("Quantity", default=1, validators=[
        InputRequired("Say how many."), NumberRange(min=1, message="The quantity must be at least 1.")])
    next = HiddenField()


class CartLineForm(SiteForm):
    """Change a cart line's quantity (0 removes it)."""

    product_id = IdField(validators=[InputRequired("Which product?")])
    variant_id = IdField(validators=[Optional()])
    quantity = IntegerField("Quantity", validators=[
        InputRequired("Say how many."), NumberRange(min=0, message="The quantity cannot be negative.")])


class RemoveLineForm(SiteForm):
    product_id = IdField(validators=[InputRequired("Which product?")])
    variant_id = IdField(validators=[Optional()])


class CheckoutForm(SiteForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    address_line1 = StringField("Address", validators=[DataRequired(), Length(max=200)])
    address_line2 = StringField("Address (line 2)", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[DataRequired(), Length(max=100)])
    postal_code = StringField("Postal code", validators=[
        DataRequired(), Length(max=20),
        Regexp(r"^[A-Za-z0-9][A-Za-z0-9 -]*$", message="Use letters, digits, spaces and hyphens.")])
    country = StringField("Country", validators=[DataRequired(), Length(max=100)])
    shipping_method = RadioField("Shipping", coerce=parse_id,
                                 validators=[InputRequired("Please choose a shipping method.")])
    discount_code = StringField("Discount code", validators=[Optional(), Length(max=40)])
    checkout_token = HiddenField(validators=[
        DataRequired("This checkout form has expired; please try again."), Length(max=64)])
    #: The total the page showed; placing the order is refused if it no longer costs that.
    seen_total = HiddenField()
