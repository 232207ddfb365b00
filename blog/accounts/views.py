"""Account pages: register, log in and out, change or reset the password, confirm the email
address, edit the profile."""

from __future__ import annotations

from typing import TypedDict

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from blog.accounts import services
from blog.accounts.forms import (
    LoginForm,
    PasswordForm,
    ProfileForm,
    RegisterForm,
    ResetPasswordForm,
    ResetRequestForm,
)
from blog.accounts.models import User
from blog.extensions import limiter
from blog.forms import ButtonForm, show_error
from blog.images import ImageError, save_image
from blog.security import member_key, safe_next_url
from blog.urls import site_name

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


@bp.route("/auth/register", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["REGISTER_RATE_LIMIT"], methods=["POST"])
def register() -> Response | str:
    if current_user.is_authenticated:
        return redirect(_next_or_home())
    form = RegisterForm()
    if form.validate_on_submit():
        inbox = (f"We have sent a message to {form.email.data}: check your inbox (and the spam "
                 "folder) to confirm the address.")
        try:
            user = services.register_member(form.username.data, form.email.data, form.password.data)
        except services.AccountError as error:
            show_error(form, error, "username")
        else:
            if user is None:
                # The address has an account; its owner was mailed. Nothing here says so.
                flash(inbox, "info")
                return redirect(url_for("auth.login"))
            services.log_in(user, **_client())
            flash(f"Welcome to {site_name()}, {user.username}! {inbox}", "success")
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


# --- links by email: password reset, address verification and change ----------------------


def _address_key() -> str:
    """The email address a reset or resend is asked for, as a rate-limit key."""
    return "address:" + services.lookup_key(request.form.get("email", ""))[:254]


@bp.route("/auth/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT_PER_ADDRESS"], key_func=_address_key,
               methods=["POST"])
def reset_request() -> Response | str:
    form = ResetRequestForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        # The same answer whether or not the address has an account.
        flash(f"If an account uses {form.email.data}, we have sent it a link to choose a new "
              "password. Check your inbox (and the spam folder).", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_request.html", form=form)


@bp.route("/auth/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Response | str | tuple[str, int]:
    user = services.user_for_reset(token)
    if user is None:
        return render_template("auth/link_invalid.html", message=services.INVALID_LINK), 400
    form = ResetPasswordForm()
    form.known_inputs = [user.username, user.email]
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.new_password.data, **_client())
        except services.AccountError as error:
            return render_template("auth/link_invalid.html", message=error.message), 400
        flash("Your password has been changed and you are logged in; every other device "
              "has been logged out.", "success")
        return redirect(url_for("blog.index"))
    return render_template("auth/reset_password.html", form=form, user=user)


@bp.route("/auth/verify/<token>")
def verify_email(token: str) -> Response | tuple[str, int]:
    user = services.verify_email(token)
    if user is None:
        return render_template("auth/link_invalid.html", message=services.INVALID_LINK,
                               resend=current_user.is_authenticated), 400
    flash(f"Thank you: {user.email} is confirmed.", "success")
    return redirect(url_for("auth.profile") if current_user.is_authenticated else url_for("blog.index"))


@bp.route("/auth/verify", methods=["POST"])
@login_required
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT_PER_ADDRESS"], key_func=member_key)
def resend_verification() -> Response:
    form = ButtonForm()
    if form.validate_on_submit():
        services.send_verification(current_user._get_current_object())
        flash(f"We have sent a new link to {current_user.email}.", "info")
    return redirect(url_for("auth.profile"))


@bp.route("/auth/email/<token>")
def confirm_email(token: str) -> Response | tuple[str, int]:
    try:
        user = services.confirm_email_change(token)
    except services.AccountError as error:
        return render_template("auth/link_invalid.html", message=error.message), 400
    flash(f"Your email address is now {user.email}.", "success")
    return redirect(url_for("auth.profile") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/auth/profile", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT"], methods=["POST"])
def profile() -> Response | str:
    user = current_user._get_current_object()
    form = ProfileForm(obj=user)
    if form.validate_on_submit():
        try:
            _save_profile(user, form)
        except (services.AccountError, ImageError) as error:
            show_error(form, error)
        else:
            return redirect(url_for("auth.profile"))
    return render_template("auth/profile.html", form=form, user=user,
                           resend_form=ButtonForm(formdata=None))


def _save_profile(user: User, form: ProfileForm) -> None:
    """The picture first (checked and stored before the transaction), then the fields, then
    an address change, which only sends its link."""
    upload = form.avatar_upload()
    avatar = save_image(upload) if upload else None
    services.update_profile(user, services.ProfileChanges(
        display_name=form.display_name.data or "", bio=form.bio.data or "",
        website=form.website.data or "", notify_comments=bool(form.notify_comments.data),
        avatar=avatar, remove_avatar=bool(form.remove_avatar.data)))
    flash("Your profile is saved.", "success")
    new_email = (form.email.data or "").strip()
    if services.lookup_key(new_email) != user.email_key:
        services.request_email_change(user, new_email)
        flash(f"We have sent a link to {new_email}: your address changes when you follow it.", "info")
