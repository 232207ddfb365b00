"""What the admin tests share: an admin logged in, and an order for the admin to look at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from blog.accounts.models import User
from tests.conftest import AuthActions


@pytest.fixture
def admin(auth: AuthActions, make_user: Callable[..., User]) -> User:
    """root, an admin, logged in."""
    user = make_user("root", admin=True)
    auth.login("root")
    return user


@pytest.fixture
def placed(placed_order: dict[str, Any], auth: AuthActions, make_user: Callable[..., User]) -> dict[str, Any]:
    """``placed_order`` (alice ordered 2 mugs (8.00) with Post (5.00): total 21.00), then alice
    logs out and root, an admin, logs in."""
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    return placed_order
