"""The newsletter's pages: subscribe, confirm, unsubscribe (one click), a member's choice."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from blog.extensions import csrf, limiter
from blog.newsletter import subscribers
from blog.newsletter.forms import SubscribeForm
from blog.security import safe_next_url

bp = Blueprint("newsletter", __name__, url_prefix="/newsletter")

CHECK_INBOX = ("Thank you! If the address can receive the newsletter, a link to confirm it is on "
               "its way: please check your inbox.")


def _address_key() -> str:
    return "newsletter:" + (request.form.get("email") or "").strip().lower()[:254]


def same_site_post() -> bool:
    """Whether this POST comes from one of our own pages: the browser's ``Sec-Fetch-Site`` and
    ``Origin`` headers (every current browser sends them on a form post) must not name another
    site. This is the subscribe form's CSRF protection, without a session cookie; a request
    with neither header comes from no browser, so no visitor can be tricked into sending it."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    ours = {f"{request.scheme}://{request.host}"}
    site = urlsplit(current_app.config["SITE_URL"])
    ours.add(f"{site.scheme}://{site.netloc}")
    return origin in ours


@bp.route("/subscribe", methods=["GET", "POST"])
@csrf.exempt  # checked by same_site_post() instead (see SubscribeForm)
@limiter.limit(lambda: current_app.config["NEWSLETTER_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["NEWSLETTER_RATE_LIMIT_PER_ADDRESS"], key_func=_address_key,
               methods=["POST"])
def subscribe() -> Response | str | tuple[str, int]:
    form = SubscribeForm()
    if request.method == "POST":
        if not same_site_post():
            abort(400)
        if form.validate():
            subscribers.subscribe(form.email.data or "")
            flash(CHECK_INBOX, "success")
            return redirect(safe_next_url(request.form.get("next")) or url_for("newsletter.subscribe"))
        return render_template("newsletter/subscribe.html", form=form), 400
    return render_template("newsletter/subscribe.html", form=form)


@bp.route("/confirm/<token>")
def confirm(token: str) -> str | tuple[str, int]:
    subscriber = subscribers.confirm(token)
    if subscriber is None:
        return render_template("newsletter/link_invalid.html"), 404
    return render_template("newsletter/confirmed.html", subscriber=subscriber)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail programs POST it blind; the signed token is the proof
@limiter.exempt
def unsubscribe(token: str) -> str | tuple[str, int]:
    subscriber = subscribers.subscriber_for_unsubscribe(token)
    if subscriber is None:
        return render_template("newsletter/link_invalid.html"), 404
    if request.method == "POST":
        subscribers.unsubscribe(subscriber)
        return render_template("newsletter/unsubscribed.html", subscriber=subscriber)
    return render_template("newsletter/unsubscribe.html", subscriber=subscriber, token=token)


@bp.route("/profile", methods=["POST"])
@login_required
def profile() -> Response:
    """A member's choice on their profile page (with the usual CSRF token)."""
    wanted = request.form.get("newsletter") == "y"
    flash(subscribers.set_member_subscription(current_user._get_current_object(), wanted), "success")
    return redirect(url_for("auth.profile"))


@bp.app_template_global()
def newsletter_status() -> str | None:
    """The current member's subscription status (their profile page), or None."""
    if not current_user.is_authenticated:
        return None
    row = subscribers.member_subscription(current_user)
    return row.status if row is not None else None
