"""Signed links for email: reset a password, verify an address, confirm a new address.

Nothing is stored: each token is signed with ``SECRET_KEY`` (itsdangerous) under a salt of
its own purpose, so a token made for one purpose is worthless for another, and it carries
what must still be true when it is used:

- a reset token, a fingerprint of the member's password hash: once the password changes
  (by this reset or otherwise) the token no longer matches, which also makes it single-use;
- a verification token, the address it was sent to: it dies if the address changes;
- an address-change token, the old and the new address: it works only while the old one
  is still the member's.

Tokens expire after their purpose's maximum age. The raw token is never in the database.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

RESET = "password-reset"
VERIFY = "verify-email"
EMAIL_CHANGE = "email-change"

_MAX_AGE_SETTINGS = {RESET: "PASSWORD_RESET_MAX_AGE", VERIFY: "EMAIL_VERIFY_MAX_AGE",
                     EMAIL_CHANGE: "EMAIL_VERIFY_MAX_AGE"}


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"inkwell.{purpose}")


def make(purpose: str, *values: Any) -> str:
    """A token for ``purpose`` carrying ``values`` (JSON-serializable)."""
    return _serializer(purpose).dumps(list(values))


def read(purpose: str, token: str) -> list[Any] | None:
    """The values of a valid, unexpired token for ``purpose``; None for anything else."""
    max_age = int(current_app.config[_MAX_AGE_SETTINGS[purpose]])
    try:
        values = _serializer(purpose).loads(token, max_age=max_age)
    except BadSignature:  # also SignatureExpired, a subclass
        return None
    return values if isinstance(values, list) else None


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash: changes whenever the password does, and tells
    nothing about it (the token travels in plain email)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, password_hash.encode(), hashlib.sha256).hexdigest()[:32]
