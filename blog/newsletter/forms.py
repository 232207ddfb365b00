"""Newsletter forms."""

from __future__ import annotations

from wtforms import EmailField
from wtforms.validators import DataRequired, Email, Length

from blog.forms import SiteForm


def _stripped(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


class SubscribeForm(SiteForm):
    """The footer's and the post's form. It carries no CSRF token (see the view): it is on
    every public page, and a token would give each visitor a session cookie."""

    class Meta:
        csrf = False

    email = EmailField("Your email", filters=[_stripped],
                       validators=[DataRequired(), Length(max=254), Email()])
