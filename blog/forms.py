"""Input at the edge, shared by every domain: the base forms, the id and money fields, the
``id`` URL converter, the CSRF-only button form, and showing a service's error on a form.

Whatever a request carries is checked here, before a service or the database sees it: an id
past the column's range or a non-finite amount would otherwise reach a query or a comparison
and answer 500.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from flask_wtf.form import SUBMIT_METHODS
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import IntegerConverter
from wtforms import BooleanField, FieldList, FormField, IntegerField, SelectMultipleField, StringField
from wtforms import Form as PlainForm
from wtforms.fields.numeric import DecimalField

from blog.errors import ServiceError

#: The largest id any table holds: PostgreSQL's INTEGER. SQLite's columns reach 2**63 - 1, but
#: one bound for both keeps the two databases answering alike.
MAX_ID = 2**31 - 1

#: The largest amount a money field takes (Money stores cents in a BIGINT; this is far below).
MAX_MONEY = Decimal("9999999.99")


def parse_id(value: Any) -> int:
    """``value`` as an id (1 to :data:`MAX_ID`, ASCII digits only); ValueError otherwise."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ID))):
        raise ValueError("Not a valid id.")
    ident = int(text)
    if not 1 <= ident <= MAX_ID:
        raise ValueError("Not a valid id.")
    return ident


class IdConverter(IntegerConverter):
    """``<id:name>`` in a route: an id the tables can hold, so any other number is a 404
    instead of a query the database cannot run (registered as "id" by the app factory)."""

    def __init__(self, map: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def id_arg(name: str) -> int | None:
    """Query argument ``name`` as an id, or None when it is absent or not a valid id (a
    filter that cannot match anything is no filter)."""
    try:
        return parse_id(request.args[name]) if name in request.args else None
    except ValueError:
        return None


class IdField(IntegerField):
    """A form field carrying an id: anything but 1 to :data:`MAX_ID` is a form error."""

    data: Any

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist or valuelist[0] in ("", None):
            self.data = None
            if valuelist:
                raise ValueError(self.gettext("Not a valid id."))
            return
        try:
            self.data = parse_id(valuelist[0])
        except ValueError:
            self.data = None
            raise ValueError(self.gettext("Not a valid id.")) from None


class MoneyField(DecimalField):
    """An amount of money typed by a person: a finite number within :data:`MAX_MONEY`, so
    that range checks and rounding can compare it (``sNaN`` raises on any comparison,
    ``NaN`` never compares, and a 30-digit amount overflows the decimal context)."""

    data: Any

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        super().__init__(label, validators, places=2, rounding=None, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        text = str(valuelist[0]).strip()
        try:
            amount = Decimal(text) if len(text) <= 40 else None
        except (InvalidOperation, ValueError):
            amount = None
        if amount is None or not amount.is_finite():
            self.data = None
            raise ValueError(self.gettext("Enter an amount such as 12.50."))
        if abs(amount) > MAX_MONEY:
            self.data = None
            raise ValueError(f"Enter an amount of at most {MAX_MONEY:,}.")
        self.data = amount


# --- absent fields ----------------------------------------------------------------------------

#: Fields whose absence already means something (an unticked box, no file, no choice) or that
#: hold other fields: left as WTForms processes them.
_KEEP_WHEN_ABSENT = (BooleanField, FileField, FormField, FieldList, SelectMultipleField)


class AbsentIsEmpty:
    """Process a submitted form so that a field missing from the request is the same as a
    field sent empty.

    WTForms leaves a missing field at its default or at the object's value (``obj=post``
    makes ``tags`` the post's Tag list), which no view expects; a browser always sends every
    text field, but a hand-made request need not. Mixed into every form of the site.
    """

    def process(self, formdata: Any = None, obj: Any = None, data: Any = None,
                extra_filters: Any = None, **kwargs: Any) -> None:
        super().process(formdata, obj, data=data, extra_filters=extra_filters, **kwargs)  # type: ignore[misc]
        for field in self:  # type: ignore[attr-defined]
            if getattr(field, "raw_data", None) != [] or isinstance(field, _KEEP_WHEN_ABSENT):
                continue
            if isinstance(field, StringField):
                field.data = ""
            else:
                field.data = None  # what an empty number, date or choice gives


class SiteForm(AbsentIsEmpty, FlaskForm):
    """The base of every form of the site that is posted on its own (CSRF included)."""

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            """A submitted request with no form body (JSON, text/plain, no fields at all) is
            a form with every field absent, not the unsubmitted form Flask-WTF makes of it."""
            wrapped = super().wrap_formdata(form, formdata)
            if wrapped is None and formdata is not None and request.method in SUBMIT_METHODS:
                return ImmutableMultiDict()
            return wrapped


class SiteSubForm(AbsentIsEmpty, PlainForm):
    """The base of a form nested in another (a row of a list), with no CSRF of its own."""


class ButtonForm(SiteForm):
    """A button that changes something (log out, like, follow, delete, cancel): no fields,
    only the CSRF token, so another site cannot press it for the member."""


def show_error(form: FlaskForm, error: ServiceError, default_field: str | None = None) -> None:
    """Show ``error`` on ``form``: under the field it names (else ``default_field``) when the
    form has such a field, otherwise above the form. A list of sub-forms (the product form's
    variant rows) has no single place for a message, so its errors go above the form too."""
    name = error.field or default_field
    field = form._fields.get(name) if name else None
    if field is None or isinstance(field, (FieldList, FormField)):
        form.form_errors.append(error.message)
    else:
        field.errors.append(error.message)
