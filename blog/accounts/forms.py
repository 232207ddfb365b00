"""Account forms. Server-side validation here; the services re-check what the database must."""

from __future__ import annotations

from flask import current_app
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp, ValidationError

from blog.forms import SiteForm

USERNAME_PATTERN = r"^[A-Za-z0-9_-]+$"


def password_strength(form: SiteForm, field: PasswordField) -> None:
    """At least ``PASSWORD_MIN_LENGTH`` characters; no upper bound (passwords are pre-hashed)."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(field.data or "") < minimum:
        raise ValidationError(f"Use at least {minimum} characters.")


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
