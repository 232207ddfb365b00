"""Account pages: register, log in and out, change password."""

from __future__ import annotations

from typing import TypedDict

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from blog.accounts import services
from blog.accounts.forms import LoginForm, PasswordForm, RegisterForm
from blog.extensions import limiter
from blog.forms import ButtonForm, show_error
from blog.security import safe_next_url

bp = Blueprint("auth", __name__)


class _Client(TypedDict):
    ip_address: str
    user_agent: str


def _client() -> _Client:
    """Where a login comes from, kept with its session (the member's list of devices)."""
    return {"ip_address": request.remote_addr or "",
            "user_agent": request.user_agent.string or ""}


def _next_or_home() -> str:
    return safe_next_url(request.args.get("next")) or url_for("blog.index")


@bp.app_context_processor
def inject_logout_form() -> dict[str, object]:
    """base.html needs a logout form (with its CSRF token) on every page.

    ``formdata=None``: the form never reads the request body, which an error page (413 for
    an oversized upload) must not touch. Anonymous visitors get none.
    """
    if not current_user.is_authenticated:
        return {}  # no form, no CSRF token, so anonymous pages set no session cookie
    return {"logout_form": ButtonForm(formdata=None)}


@bp.route("/auth/register", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["REGISTER_RATE_LIMIT"], methods=["POST"])
def register() -> Response | str:
    if current_user.is_authenticated:
        return redirect(_next_or_home())
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = services.create_user(form.username.data, form.email.data, form.password.data)
        except services.AccountError as error:
            show_error(form, error, "username")
        else:
            services.log_in(user, **_client())
            flash(f"Welcome to {current_app.config['SITE_NAME']}, {user.username}!", "success")
            return redirect(_next_or_home())
    return render_template("auth/register.html", form=form)


@bp.route("/auth/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    if current_user.is_authenticated:
        return redirect(_next_or_home())
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.username.data, form.password.data,
                                         request.remote_addr or "")
        except services.LoginThrottled as error:
            show_error(form, error)
            html = render_template("auth/login.html", form=form)
            return html, 429, {"Retry-After": str(error.retry_after)}
        except services.AccountError as error:
            show_error(form, error)
        else:
            services.log_in(user, remember=form.remember.data, **_client())
            flash(f"Welcome back, {user.username}.", "success")
            return redirect(_next_or_home())
    return render_template("auth/login.html", form=form)


@bp.route("/auth/logout", methods=["POST"])
def logout() -> Response:
    # CSRF is checked globally before this view runs, so another site cannot log you out.
    services.log_out()
    flash("You have been logged out.", "info")
    return redirect(url_for("blog.index"))


@bp.route("/auth/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | str | tuple[str, int, dict[str, str]]:
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(current_user._get_current_object(), form.current_password.data,
                                     form.new_password.data, **_client())
        except services.LoginThrottled as error:
            show_error(form, error)
            html = render_template("auth/password.html", form=form)
            return html, 429, {"Retry-After": str(error.retry_after)}
        except services.AccountError as error:
            show_error(form, error, "current_password")
        else:
            flash("Your password has been changed; other devices have been logged out.", "success")
            return redirect(url_for("blog.profile", username=current_user.username))
    return render_template("auth/password.html", form=form)
