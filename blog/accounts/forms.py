"""Account forms. Server-side validation here; the services re-check what the database must."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import current_app
from flask_login import current_user
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import BooleanField, EmailField, PasswordField, StringField, TextAreaField, URLField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp, ValidationError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from blog.accounts.models import BIO_MAX, DISPLAY_NAME_MAX, WEBSITE_MAX
from blog.forms import SiteForm

USERNAME_PATTERN = r"^[A-Za-z0-9_-]+$"

#: zxcvbn judges this many leading characters. Its matching grows quickly with length (a
#: random 72-character string takes seconds), and a password whose first 40 characters are
#: hard to guess is hard to guess.
STRENGTH_CHECKED_CHARACTERS = 40

_DEFAULT_ADVICE = "Try a few uncommon words together, like a short sentence only you would write."


def weak_password_reason(password: str, user_inputs: Iterable[str] = ()) -> str | None:
    """Why ``password`` is too easy to guess, or None when it is good enough.

    zxcvbn (Dropbox's estimator) knows the 30,000 most common passwords of public breaches,
    common words and names, keyboard patterns, dates, repeats and l33t spellings, and scores
    from 0 to 4; below ``PASSWORD_MIN_SCORE`` the password is refused. ``user_inputs`` (the
    username, the email) count as easy to guess too.
    """
    minimum = current_app.config["PASSWORD_MIN_SCORE"]
    if minimum <= 0:
        return None
    inputs = [value for value in user_inputs if value]
    inputs += [part for value in inputs for part in value.split("@")]
    result = zxcvbn(password[:STRENGTH_CHECKED_CHARACTERS], user_inputs=inputs)
    if result["score"] >= minimum:
        return None
    feedback = result["feedback"]
    advice = " ".join(part for part in (feedback["warning"], *feedback["suggestions"]) if part)
    return f"This password is too easy to guess. {advice or _DEFAULT_ADVICE}"


def _known_about_user(form: SiteForm) -> list[str]:
    """What the form or the logged-in member tells about who is choosing the password."""
    values = [getattr(form, name).data or "" for name in ("username", "email") if hasattr(form, name)]
    values += getattr(form, "known_inputs", [])  # set by a view that knows whose password it is
    if current_user.is_authenticated:
        values += [current_user.username, current_user.email]
    return [value for value in values if isinstance(value, str)]


def password_strength(form: SiteForm, field: PasswordField) -> None:
    """At least ``PASSWORD_MIN_LENGTH`` characters, and not easy to guess; no upper bound
    (passwords are pre-hashed)."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    password = field.data or ""
    if len(password) < minimum:
        raise ValidationError(f"Use at least {minimum} characters.")
    reason = weak_password_reason(password, _known_about_user(form))
    if reason:
        raise ValidationError(reason)


class RegisterForm(SiteForm):
    username = StringField("Username", validators=[
        DataRequired(), Length(min=3, max=32),
        Regexp(USERNAME_PATTERN, message="Use letters, digits, '-' and '_' only."),
    ])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), Email()])
    password = PasswordField("Password", validators=[DataRequired(), password_strength])
    confirm = PasswordField("Repeat password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match."),
    ])


class LoginForm(SiteForm):
    username = StringField("Username or email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Remember me")


class PasswordForm(SiteForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), password_strength])
    confirm = PasswordField("Repeat new password", validators=[
        DataRequired(), EqualTo("new_password", message="The passwords do not match."),
    ])


class ResetRequestForm(SiteForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), Email()])


class ResetPasswordForm(SiteForm):
    new_password = PasswordField("New password", validators=[DataRequired(), password_strength])
    confirm = PasswordField("Repeat new password", validators=[
        DataRequired(), EqualTo("new_password", message="The passwords do not match."),
    ])


def web_address(form: SiteForm, field: StringField) -> None:
    """An http or https address with a host: anything else (javascript:, data:, a bare
    word) would be a link the profile page must not carry."""
    value = (field.data or "").strip()
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValidationError("Enter a web address starting with https:// or http://.")


class ProfileForm(SiteForm):
    display_name = StringField("Display name", validators=[Length(max=DISPLAY_NAME_MAX)])
    bio = TextAreaField("About you", validators=[Length(max=BIO_MAX)])
    website = URLField("Website", validators=[Length(max=WEBSITE_MAX), web_address])
    avatar = FileField("Picture (JPEG, PNG or WebP)")
    remove_avatar = BooleanField("Remove the picture")
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), Email()])
    notify_comments = BooleanField("Email me when someone comments on my posts")

    def avatar_upload(self) -> FileStorage | None:
        """The picture chosen, if any."""
        upload = self.avatar.data
        return upload if isinstance(upload, FileStorage) and upload.filename else None
