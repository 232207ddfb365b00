"""Access decisions: ``role_required``, ``require_owner`` (403 against 404) and ``can_manage``.

Small routes are mounted on the test app before its first request, so the decisions are tested
on their own, through real logins, independently of any page that uses them.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from flask import request

from blog.security import can_manage, require_owner, role_required
from tests.conftest import PASSWORD, csrf_token


@role_required("admin")
def admin_only() -> str:
    return "admin area"


def owned(owner_id: int) -> str:
    require_owner(owner_id)
    return "owned thing"


def private(owner_id: int) -> str:
    require_owner(owner_id, conceal=True)
    return "private thing"


def orphan() -> str:
    require_owner(None)  # a thing whose owner has gone: admins only
    return "orphaned thing"


def manage() -> str:
    return "yes" if can_manage(request.args.get("owner", type=int)) else "no"


@pytest.fixture(autouse=True)
def routes(app):
    """Mount the probe routes (Flask refuses new routes once the app has served a request)."""
    app.add_url_rule("/t/admin-only", "t_admin_only", admin_only)
    app.add_url_rule("/t/owned/<int:owner_id>", "t_owned", owned)
    app.add_url_rule("/t/private/<int:owner_id>", "t_private", private)
    app.add_url_rule("/t/orphan", "t_orphan", orphan)
    app.add_url_rule("/t/can-manage", "t_can_manage", manage)


@pytest.fixture
def people(make_user) -> dict[str, int]:
    """alice owns the things; bob is another member; root is an admin."""
    return {name: make_user(name, admin=(name == "root")).id for name in ("alice", "bob", "root")}


def log_in_as(auth, who: str) -> None:
    if who != "anonymous":
        assert auth.login(who).status_code == 302


def login_redirect(path: str) -> str:
    return "/auth/login?next=" + quote(path, safe="")


# Who asks, which probe, what they get. "login" is a redirect to the login page.
MATRIX = [
    ("anonymous", "admin-only", "login"),
    ("anonymous", "owned", "login"),
    ("anonymous", "private", 404),
    ("bob", "admin-only", 403),
    ("bob", "owned", 403),
    ("bob", "private", 404),
    ("alice", "admin-only", 403),
    ("alice", "owned", 200),
    ("alice", "private", 200),
    ("root", "admin-only", 200),
    ("root", "owned", 200),
    ("root", "private", 200),
]


BODIES = {"admin-only": "admin area", "owned": "owned thing", "private": "private thing"}


@pytest.mark.parametrize("who, probe, expected", MATRIX)
def test_access_matrix(client, auth, people, who, probe, expected):
    log_in_as(auth, who)
    path = "/t/admin-only" if probe == "admin-only" else f"/t/{probe}/{people['alice']}"
    response = client.get(path)
    if expected == "login":
        assert response.status_code == 302
        assert response.headers["Location"] == login_redirect(path)
    else:
        assert response.status_code == expected
    if expected == 200:
        assert response.get_data(as_text=True) == BODIES[probe]


@pytest.mark.parametrize("who, expected", [("anonymous", "login"), ("alice", 403), ("root", 200)])
def test_thing_without_an_owner_is_for_admins_only(client, auth, people, who, expected):
    log_in_as(auth, who)
    response = client.get("/t/orphan")
    if expected == "login":
        assert response.headers["Location"] == login_redirect("/t/orphan")
    else:
        assert response.status_code == expected


def test_forbidden_is_the_html_403_page(client, auth, people):
    log_in_as(auth, "bob")
    for path in ("/t/admin-only", f"/t/owned/{people['alice']}"):
        response = client.get(path)
        assert response.status_code == 403
        assert response.mimetype == "text/html"
        assert "You do not have permission to do that." in response.get_data(as_text=True)


TOKEN = re.compile(r'value="[^"]*"')


@pytest.mark.parametrize("who", ["anonymous", "bob"])
def test_concealed_thing_looks_exactly_like_a_missing_page(client, auth, people, who):
    """The 404 for someone else's private thing must not differ from a page that never existed,
    or its existence leaks. (Hidden CSRF tokens are time-stamped, so they are masked.)"""
    log_in_as(auth, who)
    client.get("/")  # shows (and so clears) the welcome message
    concealed = client.get(f"/t/private/{people['alice']}")
    missing = client.get(f"/t/private-nothing/{people['alice']}")
    assert concealed.status_code == missing.status_code == 404
    assert TOKEN.sub("", concealed.get_data(as_text=True)) == TOKEN.sub("", missing.get_data(as_text=True))


def test_login_page_brings_an_anonymous_visitor_back(client, people):
    path = f"/t/owned/{people['alice']}"
    login_page = client.get(path).headers["Location"]
    response = client.get(login_page)
    assert "Please log in to see that page." in response.get_data(as_text=True)
    response = client.post(login_page, data={
        "csrf_token": csrf_token(client), "username": "alice", "password": PASSWORD,
    })
    assert response.headers["Location"] == path
    assert client.get(path).get_data(as_text=True) == "owned thing"


def test_access_ends_with_logout(client, auth, people):
    log_in_as(auth, "root")
    assert client.get("/t/admin-only").status_code == 200
    auth.logout()
    assert client.get("/t/admin-only").status_code == 302


def test_role_required_keeps_the_view_name():
    """Flask names endpoints after the view function: a decorator that lost the name would make
    every decorated view collide on one endpoint."""
    assert admin_only.__name__ == "admin_only"
    assert admin_only.__wrapped__.__name__ == "admin_only"


# --- can_manage ------------------------------------------------------------------------------


@pytest.mark.parametrize("who, owner, expected", [
    ("alice", "alice", "yes"),
    ("alice", "bob", "no"),
    ("alice", None, "no"),
    ("bob", "alice", "no"),
    ("root", "alice", "yes"),
    ("root", None, "yes"),
    ("anonymous", "alice", "no"),
    ("anonymous", None, "no"),
])
def test_can_manage(client, auth, people, who, owner, expected):
    log_in_as(auth, who)
    query = {"owner": people[owner]} if owner else {}
    assert client.get("/t/can-manage", query_string=query).get_data(as_text=True) == expected


@pytest.mark.parametrize("owner_id", [None, 0, 1])
def test_can_manage_is_false_outside_any_login(app, owner_id):
    with app.test_request_context("/"):
        assert can_manage(owner_id) is False
