"""What the accounts tests share: the registration form posted as a browser would, the errors a
form shows, and whether a client is logged in."""

from __future__ import annotations

import re
from html import unescape

from tests.conftest import PASSWORD, csrf_token


def register(client, username="alice", email="alice@example.com", password=PASSWORD, confirm=None):
    """Post the registration form; ``confirm`` repeats the password unless given."""
    return client.post("/auth/register", data={
        "csrf_token": csrf_token(client, "/auth/register"),
        "username": username, "email": email, "password": password,
        "confirm": password if confirm is None else confirm,
    })


def field_errors(response) -> list[str]:
    """The messages of the page's form error list."""
    html = response.get_data(as_text=True)
    if 'class="errors"' not in html:
        return []
    return [unescape(text) for text in re.findall(r"<li>([^<]+)</li>", html.split('class="errors"', 1)[1])]


def is_logged_in(client) -> bool:
    """Whether the client is logged in (the change-password page needs a member)."""
    return client.get("/auth/password").status_code == 200
