"""Passwords, redirects, response headers and access decisions shared by every domain."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from tempfile import SpooledTemporaryFile
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import bcrypt
from flask import Request, abort, current_app, g, request, session
from flask_limiter.util import get_remote_address
from flask_login import current_user
from werkzeug.wrappers import Response

from blog.extensions import login_manager

F = TypeVar("F", bound=Callable[..., Any])

# --- passwords -----------------------------------------------------------------------------


def _prehash(password: str) -> bytes:
    """SHA-256 the whole password and base64 it, so bcrypt sees 44 ASCII bytes.

    bcrypt only reads 72 bytes (bcrypt 5 raises past them) and stops at a NUL byte; the
    pre-hash makes every character of any password count and keeps NULs out.
    ``surrogatepass`` lets even unpaired surrogates through rather than raising.
    """
    digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest)


def hash_password(password: str, rounds: int | None = None) -> str:
    """Return a bcrypt hash of ``password`` at the configured cost (``BCRYPT_ROUNDS``)."""
    if rounds is None:
        rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; a malformed hash never matches."""
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


_dummy_hashes: dict[int, str] = {}


def check_password_of_nobody(password: str) -> bool:
    """Spend the time a real check takes, for a user that does not exist.

    Answering "unknown user" faster than "wrong password" would tell an attacker which
    usernames exist. Always returns False.
    """
    rounds = current_app.config["BCRYPT_ROUNDS"]
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = hash_password("not the password of anyone", rounds)
    check_password(_dummy_hashes[rounds], password)
    return False


def hash_rounds(password_hash: str) -> int:
    """The cost factor a bcrypt hash was made with (``$2b$12$...`` -> 12)."""
    return int(password_hash.split("$")[2])


# --- redirects -----------------------------------------------------------------------------


def safe_next_url(target: str | None) -> str | None:
    """Return ``target`` if it is a path on this site, else None.

    Browsers treat ``//host``, ``/\\host`` and ``https:host`` as other sites, and strip tabs and
    newlines before parsing, so anything but a plain absolute path is refused.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    return target


# --- input ---------------------------------------------------------------------------------


def reject_nul_bytes() -> None:
    """400 for a NUL character in the path, query or form fields.

    No text a person types contains one, PostgreSQL refuses to store or compare it (a 500
    otherwise), and it is a classic way to smuggle past string checks.
    """
    values = [request.path, *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values.extend(request.form.values())
    if any("\x00" in value for value in values):
        abort(400, description="The request contains a NUL character.")


# --- uploads -------------------------------------------------------------------------------


class CappedUpload(SpooledTemporaryFile[bytes]):
    """A file-upload buffer that keeps only the first ``keep`` bytes of what it is given and
    drops the rest, counting nothing more.

    Werkzeug writes each uploaded file into one of these while it parses the body; whatever
    the file's size, the server holds no more than ``keep`` bytes of it, in memory below
    500 KB and on disk above.
    """

    def __init__(self, keep: int) -> None:
        super().__init__(max_size=500 * 1024, mode="w+b")
        self._room = keep

    def write(self, data: Any) -> int:
        """Keep what still fits; report everything as written, so parsing goes on."""
        kept = bytes(data[:self._room])
        self._room -= len(kept)
        if kept:
            super().write(kept)
        return len(data)


class SiteRequest(Request):
    """The request class: uploaded files are cut at ``UPLOAD_MAX_BYTES`` plus one byte.

    That extra byte is all the image check needs to say "larger than 5 MB", so a body up to
    ``MAX_CONTENT_LENGTH`` (well above one image) is parsed whole: an oversized photo becomes
    a message beside the field, on the form with everything else the person typed, instead
    of a 413 page that loses it, and never costs more than the limit in memory or disk.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        return CappedUpload(int(current_app.config["UPLOAD_MAX_BYTES"]) + 1)


# --- headers -------------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


#: Stripe Checkout's hosted page. Browsers apply form-action to where a form post redirects,
#: so the checkout form's answer (303 to Stripe) needs it allowed when Stripe is on.
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def content_security_policy(config: Any) -> str:
    """The policy for this configuration: forms post to the site itself, and to the payment
    page only when an online provider is on."""
    if config.get("PAYMENT_PROVIDER") != "stripe":
        return CONTENT_SECURITY_POLICY
    origins = [STRIPE_CHECKOUT_ORIGIN]
    extra = config.get("STRIPE_CHECKOUT_ORIGIN")
    if extra:
        parts = urlsplit(extra)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


def set_security_headers(response: Response) -> Response:
    """Add the headers every response carries, error pages included.

    ``Strict-Transport-Security`` goes with secure cookies: a site that only sends its cookies
    over https is served over https, and telling browsers so (for ``HSTS_MAX_AGE`` seconds)
    stops a first plain-http request from being intercepted. Plain-http serving (``make run``,
    debug) has secure cookies off, and so no HSTS, which would lock a browser out of it.
    """
    response.headers.setdefault("Content-Security-Policy", content_security_policy(current_app.config))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    config = current_app.config
    max_age = int(config.get("HSTS_MAX_AGE") or 0)
    if config.get("SESSION_COOKIE_SECURE") and max_age > 0:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
    if _for_a_member() and "Cache-Control" not in response.headers:
        # A member's pages show their name, cart, orders and CSRF token: no browser back-button
        # cache on a shared computer and no shared proxy may keep them. A response that sets
        # its own Cache-Control (a public image) knows it is the same for everyone.
        response.headers["Cache-Control"] = "no-store"
    return response


def _for_a_member() -> bool:
    """Whether this response was made for a logged-in member.

    Flask-Login keeps the user it loaded in ``g._login_user``; a request that never asked who
    the user is (``/healthz``, an image) is the same for everyone, unless the session says a
    member is logged in. The session is read only when the request brought its cookie, since
    reading it adds ``Vary: Cookie``.
    """
    user = g.get("_login_user")
    if user is not None:
        return bool(user.is_authenticated)
    if request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        return "_user_id" in session
    return False


# --- access decisions ----------------------------------------------------------------------


# What each role may do, decided here and nowhere else (DESIGN.md, "Roles"). Every member is
# a reader: comments, likes, follows, buys. The checks take the member (or the anonymous
# user), so templates ask the same questions as views (template globals in blog.posts.views).

#: Roles that may write and publish their own posts (and upload their pictures).
WRITER_ROLES = ("author", "editor", "admin")
#: Roles that may edit, publish, unpublish and delete anyone's posts and moderate comments.
EDITOR_ROLES = ("editor", "admin")


def can_write(user: Any) -> bool:
    """Whether ``user`` may write posts: an author, editor or admin."""
    return bool(user.is_authenticated and user.has_any_role(*WRITER_ROLES))


def can_edit_any_post(user: Any) -> bool:
    """Whether ``user`` may edit, publish, unpublish or delete anyone's posts and moderate
    comments: an editor or admin."""
    return bool(user.is_authenticated and user.has_any_role(*EDITOR_ROLES))


def can_edit_post(user: Any, author_id: int | None) -> bool:
    """Whether ``user`` may edit the post written by ``author_id``: their own as a writer,
    anyone's as an editor."""
    if can_edit_any_post(user):
        return True
    return can_write(user) and user.id == author_id


def member_key() -> str:
    """A rate limit's key: the member, wherever they come from (a shared office address is
    not one person), or the client's address for a visitor."""
    if current_user.is_authenticated:
        return f"member:{current_user.id}"
    return get_remote_address()


def capability_required(check: Callable[[Any], bool]) -> Callable[[F], F]:
    """Let members for whom ``check(member)`` holds through; anonymous visitors go to the
    login page, other members get 403."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not check(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def role_required(name: str) -> Callable[[F], F]:
    """Let members holding role ``name`` through; anonymous visitors go to the login page,
    other members get 403."""
    return capability_required(lambda user: user.has_role(name))


def can_manage(owner_id: int | None) -> bool:
    """Whether the current user owns a thing (``owner_id``) or is an admin."""
    if not current_user.is_authenticated:
        return False
    return current_user.id == owner_id or current_user.is_admin


def require(allowed: bool, *, conceal: bool = False) -> None:
    """Stop the request unless ``allowed``: the one place that decides 403 against 404.

    ``conceal=True`` for things whose very existence is private (someone's order, an
    unpublished draft) answers 404 to everyone; otherwise anonymous visitors are sent to log
    in and members get 403.
    """
    if allowed:
        return
    if conceal:
        abort(404)
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    abort(403)


def require_owner(owner_id: int | None, *, conceal: bool = False) -> None:
    """Stop the request unless the current user owns the thing or is an admin (see
    :func:`require`)."""
    require(can_manage(owner_id), conceal=conceal)
