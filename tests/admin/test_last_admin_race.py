"""The last-admin guard under real concurrency (threads, real commits): admins taking their
own or each other's admin role away, or deactivating each other, at the same moment never
leave the site without an active admin."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.accounts import services as accounts
from blog.accounts.models import ADMIN, Role, User, user_roles
from blog.extensions import db
from tests.conftest import PASSWORD, AuthActions, csrf_token
from tests.shop.test_checkout_concurrency import run_together


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"DB_POOL_SIZE": 25, "DB_MAX_OVERFLOW": 5, "RATELIMIT_ENABLED": False}


def _admins(app: Flask, names: tuple[str, ...]) -> list[tuple[Any, int]]:
    clients = []
    for name in names:
        with app.app_context():
            user = accounts.create_user(name, f"{name}@example.com", PASSWORD, roles=(ADMIN,))
        client = app.test_client()
        assert AuthActions(client).login(name).status_code == 302
        clients.append((client, user.id))
    return clients


def _active_admins(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(user_roles)
                                 .join(Role, Role.id == user_roles.c.role_id)
                                 .join(User, User.id == user_roles.c.user_id)
                                 .where(Role.name == ADMIN, User.active.is_(True)))


def _press(client: Any, user_id: int, action: str) -> Any:
    token = csrf_token(client, "/admin/users")
    return lambda: client.post(f"/admin/users/{user_id}/{action}", data={"csrf_token": token})


# (Nobody may deactivate their own account, so that pair is not a race.)
@pytest.mark.parametrize(("action", "whom"), [("revoke-admin", "themselves"), ("revoke-admin", "each other"),
                                              ("deactivate", "each other")])
def test_two_admins_at_once_leave_one(committed_app: Flask, action: str, whom: str) -> None:
    app = committed_app
    (first, first_id), (second, second_id) = _admins(app, ("root1", "root2"))
    targets = (first_id, second_id) if whom == "themselves" else (second_id, first_id)

    responses = run_together([_press(first, targets[0], action), _press(second, targets[1], action)])

    # Each is done or refused (a redirect with a message), or, when the other admin's change
    # landed first, no longer allowed in the admin area at all (403).
    assert all(not isinstance(r, BaseException) and r.status_code in (302, 403) for r in responses), responses
    assert _active_admins(app) == 1
