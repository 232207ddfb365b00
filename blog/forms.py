"""Form pieces every domain shares: the CSRF-only button form, and showing a service's error
on a form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import FieldList, FormField

from blog.errors import ServiceError


class ButtonForm(FlaskForm):
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
