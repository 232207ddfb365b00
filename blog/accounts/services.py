"""Account use cases: registration, login with throttling, logout, passwords, deactivation.

Each function that writes owns its transaction through :func:`blog.database_session.transaction`
and reports failure as an :class:`AccountError` that views turn into form messages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import flask_login
from blinker import Namespace
from flask import current_app, g
from flask import session as browser_session
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload, undefer

from blog.accounts import tokens
from blog.accounts.models import LoginAttempt, Role, User, UserSession, lookup_key
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.images import delete_image
from blog.mail.outbox import queue_email
from blog.security import check_password, check_password_of_nobody, hash_password, hash_rounds
from blog.urls import site_name, site_url

_signals = Namespace()
#: Sent inside the registration transaction, after the user has an id, as
#: ``user_registered.send(app, user=user)``. Higher domains (the shop's cart) listen.
user_registered = _signals.signal("user-registered")


class AccountError(ServiceError):
    """A request about an account that cannot be carried out; ``field`` names the form field."""


class DuplicateAccount(AccountError):
    """The username or email is taken (checked again by the database's unique constraints)."""


class InvalidCredentials(AccountError):
    """Wrong password, or no such member: one message for both."""


class LoginThrottled(AccountError):
    """Too many failed logins for this account or from this address."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


INVALID_CREDENTIALS = "Invalid username or password."


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- lookups -------------------------------------------------------------------------------


def find_user(identifier: str) -> User | None:
    """The member whose username or email is ``identifier``, ignoring case."""
    key = lookup_key(identifier)
    return db.session.scalar(
        select(User).where(or_(User.username_key == key, User.email_key == key))
    )


def get_user_by_username(username: str, *, with_roles: bool = False) -> User | None:
    """The member called ``username`` (any case), active or not; ``with_roles`` loads their
    roles too (a profile shows an admin badge)."""
    stmt = select(User).where(User.username_key == lookup_key(username))
    return db.session.scalar(stmt.options(selectinload(User.roles)) if with_roles else stmt)


#: Every request of a logged-in member runs it: built once, its values bound as it runs.
#: The roles come as User.role_names, a correlated subquery: joinedload's
#: "LEFT JOIN (user_roles JOIN roles)" made SQLite materialize every member's roles (about
#: 0.2 ms at 1,000 authors), and contains_eager over two plain outer joins does not carry
#: over to the reload of a member expired by a rolled-back transaction.
_LOGIN_LOOKUP = (
    select(User)
    .join(UserSession, UserSession.user_id == User.id)
    .where(
        UserSession.token_hash == bindparam("token_hash"),
        UserSession.expires_at > bindparam("now", type_=UserSession.expires_at.type),
        User.active.is_(True),
    )
    .options(undefer(User.role_names))
)


def load_user_for_token(token: str) -> User | None:
    """Flask-Login's user loader: the active member whose live login record ``token`` names.

    One statement: the login record, the member and their roles. A logged-out, expired,
    password-changed or deactivated login yields None, which makes the cookie useless.
    """
    user = db.session.scalars(_LOGIN_LOOKUP, {"token_hash": _token_hash(token), "now": utcnow()}).first()
    if user is not None:
        user.current_session_token = token
    return user


# --- registration --------------------------------------------------------------------------


def _duplicate_field(username: str, email: str) -> str | None:
    if get_user_by_username(username) is not None:
        return "username"
    if db.session.scalar(select(User.id).where(User.email_key == lookup_key(email))) is not None:
        return "email"
    return None


_DUPLICATE_MESSAGES = {
    "username": "That username is taken.",
    "email": "An account with that email already exists.",
}


def create_user(username: str, email: str, password: str, roles: tuple[str, ...] = (), *,
                verify: bool = False) -> User:
    """Create a member (with ``roles``) in one transaction and announce it; ``verify`` also
    mails them a link to confirm their address (registration through the site).

    The user is flushed to get its id, then :data:`user_registered` is sent inside the same
    transaction so listeners' rows commit, or roll back, with the user.
    Raises :class:`DuplicateAccount` when the username or email is taken, also when a
    concurrent registration wins the race and the database's unique constraint fires.
    """
    field = _duplicate_field(username, email)
    if field:
        raise DuplicateAccount(_DUPLICATE_MESSAGES[field], field)
    password_hash = hash_password(password)
    try:
        with transaction() as session:
            user = User(username=username.strip(), email=email.strip(), password_hash=password_hash)
            user.roles = list(session.scalars(select(Role).where(Role.name.in_(roles)))) if roles else []
            if len(user.roles) != len(set(roles)):
                raise AccountError(f"Unknown role in {sorted(roles)}.")
            session.add(user)
            session.flush()
            user_registered.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
            if verify:
                _queue_verification(user)
    except IntegrityError as error:
        field = "email" if "email" in str(error.orig) else "username"
        raise DuplicateAccount(_DUPLICATE_MESSAGES[field], field) from error
    return user


def register_member(username: str, email: str, password: str) -> User | None:
    """Registration through the site: the new member (mailed a link to confirm their
    address), or None when the address already has an account.

    A taken address is not reported to whoever is registering (that would tell anyone which
    addresses have accounts here); its owner is mailed instead, with a way to log in or reset
    the password. A taken username is reported (usernames are public on profiles anyway).
    """
    if _duplicate_field(username, email) == "email":
        _tell_owner_of_attempt(email)
        return None
    try:
        return create_user(username, email, password, verify=True)
    except DuplicateAccount as error:
        if error.field != "email":
            raise
        _tell_owner_of_attempt(email)  # a concurrent registration took it meanwhile
        return None


def _tell_owner_of_attempt(email: str) -> None:
    owner = db.session.scalar(select(User).where(User.email_key == lookup_key(email)))
    if owner is None:
        return
    with transaction():
        queue_email("registration_attempt", owner.email,
                    f"Someone tried to register with your address at {site_name()}",
                    "registration_attempt", user=owner)


# --- links by email: verification, password reset, address change -------------------------

#: What a link that no longer works says, whatever the reason (expired, used, tampered).
INVALID_LINK = "This link has expired or has already been used. Please ask for a new one."


def _queue_verification(user: User) -> None:
    link = site_url("auth.verify_email", token=tokens.make(tokens.VERIFY, user.id, user.email_key))
    queue_email("verify_email", user.email,
                f"Confirm your email address for {site_name()}",
                "verify_email", user=user, link=link)


def send_verification(user: User) -> None:
    """Mail ``user`` a new link to confirm their address."""
    with transaction():
        _queue_verification(user)


def verify_email(token: str) -> User | None:
    """Mark the address a verification link was sent to as confirmed; the member, or None
    when the link is bad, expired, or for an address the member no longer has."""
    values = tokens.read(tokens.VERIFY, token)
    user = _user_of(values, 2)
    if user is None or values is None or user.email_key != values[1]:
        return None
    if user.email_verified_at is None:
        with transaction():
            user.email_verified_at = utcnow()
    return user


def _user_of(values: list[Any] | None, length: int) -> User | None:
    """The active member a token's first value names."""
    if values is None or len(values) != length or not isinstance(values[0], int):
        return None
    user = db.session.get(User, values[0])
    return user if user is not None and user.active else None


def request_password_reset(email: str) -> None:
    """Mail a reset link to the active member with ``email``, if there is one. The caller
    answers the same either way, so nobody learns whether an address has an account."""
    user = db.session.scalar(select(User).where(User.email_key == lookup_key(email)))
    if user is None or not user.active:
        return
    token = tokens.make(tokens.RESET, user.id, tokens.fingerprint(user.password_hash))
    with transaction():
        queue_email("password_reset", user.email, "Reset your password", "password_reset",
                    user=user, link=site_url("auth.reset_password", token=token),
                    minutes=max(1, current_app.config["PASSWORD_RESET_MAX_AGE"] // 60))


def user_for_reset(token: str) -> User | None:
    """The member a reset link is for, while it still works: unexpired, and the password
    unchanged since it was sent (so it works once)."""
    values = tokens.read(tokens.RESET, token)
    user = _user_of(values, 2)
    if user is None or values is None or not isinstance(values[1], str):
        return None
    if not hmac.compare_digest(tokens.fingerprint(user.password_hash), values[1]):
        return None
    return user


def reset_password(token: str, new_password: str, *, ip_address: str = "",
                   user_agent: str = "") -> User:
    """Set a new password from a reset link: every login of the member ends, this browser
    is logged in afresh, and they are mailed that the password changed. Raises AccountError
    (:data:`INVALID_LINK`) when the link no longer works."""
    user = user_for_reset(token)
    if user is None:
        raise AccountError(INVALID_LINK)
    old_hash, new_hash = user.password_hash, hash_password(new_password)
    with transaction() as session:
        # Conditional: of two tabs using one link, only the first changes the password.
        changed = affected_rows(session.execute(
            update(User).where(User.id == user.id, User.password_hash == old_hash)
            .values(password_hash=new_hash, updated_at=utcnow(),
                    # Following the link proved the inbox is theirs.
                    email_verified_at=func.coalesce(User.email_verified_at, utcnow()))
            .execution_options(synchronize_session=False)))
        if not changed:
            raise AccountError(INVALID_LINK)
        end_all_sessions(user)
        _clear_attempts(f"user:{user.id}")
        _queue_password_changed(user)
    session.refresh(user)
    log_in(user, ip_address=ip_address, user_agent=user_agent)
    return user


def _queue_password_changed(user: User) -> None:
    queue_email("password_changed", user.email, "Your password was changed", "password_changed",
                user=user, reset=site_url("auth.reset_request"))


def request_email_change(user: User, new_email: str) -> None:
    """Mail a confirmation link to ``new_email`` (the address changes only when it is
    followed) and a notice to the current address. Nothing is sent when another account
    has that address, and the caller answers the same: that is not ours to reveal."""
    new_email = new_email.strip()
    if lookup_key(new_email) == user.email_key:
        raise AccountError("That is already your address.", "email")
    taken = db.session.scalar(select(User.id).where(User.email_key == lookup_key(new_email)))
    if taken is not None:
        return
    token = tokens.make(tokens.EMAIL_CHANGE, user.id, user.email_key, new_email)
    with transaction():
        queue_email("email_change", new_email, "Confirm your new email address", "email_change",
                    user=user, new_email=new_email, link=site_url("auth.confirm_email", token=token))
        queue_email("email_change_notice", user.email, "A change of your email address was asked for",
                    "email_change_notice", user=user, new_email=new_email,
                    reset=site_url("auth.reset_request"))


def confirm_email_change(token: str) -> User:
    """Make the address a change link was sent to the member's (confirmed, since they
    followed the link). Raises AccountError when the link no longer works or another
    account took the address meanwhile."""
    values = tokens.read(tokens.EMAIL_CHANGE, token)
    user = _user_of(values, 3)
    if user is None or values is None or user.email_key != values[1] or not isinstance(values[2], str):
        raise AccountError(INVALID_LINK)
    try:
        with transaction():
            user.email = values[2]
            user.email_verified_at = utcnow()
    except IntegrityError as error:
        raise AccountError("Another account uses that address now.", "email") from error
    return user


# --- the profile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChanges:
    """What the profile form gives. ``avatar``: a newly stored image name (saved by the view
    through :mod:`blog.images` before calling), or None to keep the current one."""

    display_name: str
    bio: str
    website: str
    notify_comments: bool
    avatar: str | None = None
    remove_avatar: bool = False


def update_profile(user: User, changes: ProfileChanges) -> None:
    """Save the profile. An avatar replaced or removed has its files deleted once the change
    has committed; a new one whose save fails is deleted instead."""
    old_avatar = user.avatar
    try:
        with transaction():
            user.display_name = changes.display_name.strip()
            user.bio = changes.bio.strip()
            user.website = changes.website.strip()
            user.notify_comments = changes.notify_comments
            if changes.avatar:
                user.avatar = changes.avatar
            elif changes.remove_avatar:
                user.avatar = None
    except BaseException:
        delete_image(changes.avatar)
        raise
    if old_avatar and old_avatar != user.avatar:
        delete_image(old_avatar)


# --- login and logout ----------------------------------------------------------------------


def _throttling() -> bool:
    return bool(current_app.config["RATELIMIT_ENABLED"])


def _record_attempt(account_key: str, ip_address: str) -> int:
    """Commit a login attempt and return its id; old attempts are purged on the way."""
    window = timedelta(seconds=current_app.config["LOGIN_THROTTLE_WINDOW_SECONDS"])
    with transaction() as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < utcnow() - window))
        attempt = LoginAttempt(account_key=account_key, ip_address=ip_address)
        session.add(attempt)
        session.flush()
        return attempt.id


def _check_throttle(account_key: str, ip_address: str) -> None:
    """Raise :class:`LoginThrottled` when the account or the address has too many attempts.

    The attempt being checked is already committed, and every attempt counts itself and all
    committed before it; so however many workers race, at most the limit get through.
    """
    config = current_app.config
    window = config["LOGIN_THROTTLE_WINDOW_SECONDS"]
    since = utcnow() - timedelta(seconds=window)
    recent = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.created_at > since)
    per_account, per_address = db.session.execute(
        select(
            recent.where(LoginAttempt.account_key == account_key).scalar_subquery(),
            recent.where(LoginAttempt.ip_address == ip_address).scalar_subquery(),
        )
    ).one()
    if (per_account > config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
            or per_address > config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        minutes = max(1, window // 60)
        raise LoginThrottled(
            f"Too many failed login attempts. Please wait {minutes} minutes and try again.",
            retry_after=window,
        )


def _throttle_attempt(account_key: str, ip_address: str) -> None:
    """Record a password attempt and raise :class:`LoginThrottled` when over a limit."""
    if _throttling():
        address_key = client_key(ip_address)
        _record_attempt(account_key, address_key)
        _check_throttle(account_key, address_key)


def _clear_attempts(account_key: str) -> None:
    """Forget an account's attempts after a correct password (inside the caller's transaction)."""
    if _throttling():
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.account_key == account_key))


def client_key(ip_address: str) -> str:
    """The address a throttle counts against: IPv4 as is, IPv6 by its /64 network, since one
    subscriber usually holds a whole /64 and could otherwise rotate through it."""
    try:
        address = ipaddress.ip_address(ip_address)
    except ValueError:
        return ip_address[:45] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def authenticate(identifier: str, password: str, ip_address: str) -> User:
    """Check a login; return the member or raise an :class:`AccountError`.

    Unknown user, wrong password and a deactivated account (even with the right password) get
    the same message and about the same time (one bcrypt check on each path), so the login
    form tells nobody which accounts exist or have been deactivated. Every attempt is recorded
    before the password is checked, so the throttle holds across processes; a successful login
    clears the account's attempts.
    """
    user = find_user(identifier)
    account_key = f"user:{user.id}" if user else "name:" + lookup_key(identifier)[:250]
    _throttle_attempt(account_key, ip_address)
    if user is None:
        check_password_of_nobody(password)
        raise InvalidCredentials(INVALID_CREDENTIALS)
    # One test for both: a separate "deactivated" answer would confirm the password to whoever
    # guessed it, and tell them the account exists.
    if not check_password(user.password_hash, password) or not user.active:
        raise InvalidCredentials(INVALID_CREDENTIALS)
    # Hash before taking the write lock: bcrypt is slow by design.
    rehashed = (hash_password(password)
                if hash_rounds(user.password_hash) != current_app.config["BCRYPT_ROUNDS"] else None)
    with transaction():
        _clear_attempts(account_key)
        if rehashed:
            user.password_hash = rehashed  # follow a changed cost setting
    return user


def _new_csrf_token() -> None:
    """Drop this browser's CSRF token, so the next form gets a new one.

    Flask-WTF keeps the raw token in the session (and caches it in ``g`` for the request) under
    its field name. A token that outlives a change of who is logged in could have been read
    (from a page, a log, a shared computer) before the change and still be good after it.
    """
    name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    browser_session.pop(name, None)
    g.pop(name, None)


def log_in(user: User, *, remember: bool = False, ip_address: str = "", user_agent: str = "") -> None:
    """Start a login session for ``user`` in this browser (a new server-side record) with a
    new CSRF token."""
    config = current_app.config
    token = secrets.token_urlsafe(32)
    lifetime = config["REMEMBER_COOKIE_DURATION"] if remember else config["LOGIN_SESSION_LIFETIME"]
    now = utcnow()
    with transaction() as session:
        session.execute(
            delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
        )
        session.add(UserSession(
            token_hash=_token_hash(token), user_id=user.id, created_at=now,
            expires_at=now + lifetime, remember=remember,
            ip_address=(ip_address or "")[:45], user_agent=(user_agent or "")[:200],
        ))
    user.current_session_token = token
    flask_login.login_user(user, remember=remember, duration=lifetime)
    _new_csrf_token()


def log_out() -> None:
    """End the current login: its record is deleted, so copies of the cookie stop working, and
    the CSRF token is replaced."""
    user = flask_login.current_user
    if user.is_authenticated and user.current_session_token:
        with transaction() as session:
            session.execute(
                delete(UserSession).where(UserSession.token_hash == _token_hash(user.current_session_token))
            )
    flask_login.logout_user()
    _new_csrf_token()


def end_all_sessions(user: User) -> None:
    """Log ``user`` out everywhere (inside the caller's transaction)."""
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))


def change_password(user: User, current_password: str, new_password: str, *,
                    ip_address: str = "", user_agent: str = "") -> None:
    """Set a new password; every other login of the member ends, this one continues.

    Checking the current password counts against the same throttle as logging in, so a
    stolen session cannot be used to guess it.
    """
    account_key = f"user:{user.id}"
    _throttle_attempt(account_key, ip_address)
    if not check_password(user.password_hash, current_password):
        raise AccountError("Your current password is not correct.", "current_password")
    if current_password == new_password:
        raise AccountError("The new password must differ from the current one.", "new_password")
    remember = db.session.scalar(
        select(UserSession.remember).where(
            UserSession.token_hash == _token_hash(user.current_session_token or "")
        )
    )
    new_hash = hash_password(new_password)
    with transaction():
        user.password_hash = new_hash
        _clear_attempts(account_key)
        end_all_sessions(user)
        _queue_password_changed(user)
    log_in(user, remember=bool(remember), ip_address=ip_address, user_agent=user_agent)


def set_active(user: User, active: bool) -> None:
    """Deactivate (ending every login at once) or reactivate a member."""
    with transaction():
        user.active = active
        if not active:
            end_all_sessions(user)
