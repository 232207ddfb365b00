"""Shared templates: the base layout and the pagination macro later list pages use."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from sqlalchemy import select

from blog.accounts.models import LoginAttempt
from blog.database_session import transaction
from blog.extensions import db

PAGER = '{% from "macros/pagination.html" import pagination %}{{ pagination(page, "blog.index") }}'


def add_attempts(app, count):
    with app.app_context(), transaction() as session:
        session.add_all(LoginAttempt(account_key=f"k{i}", ip_address="x") for i in range(count))


def render_pager(app, path, per_page=2):
    with app.test_request_context(path):
        page = db.paginate(select(LoginAttempt).order_by(LoginAttempt.id), per_page=per_page)
        return page, render_template_string(PAGER, page=page)


def test_pagination_macro_links_keep_the_query(app):
    add_attempts(app, 7)
    page, html = render_pager(app, "/?q=ink&page=2")
    assert page.page == 2 and page.pages == 4
    assert 'rel="prev" href="/?q=ink&amp;page=1"' in html
    assert 'rel="next" href="/?q=ink&amp;page=3"' in html
    assert '<span aria-current="page">2</span>' in html
    assert re.findall(r'href="/\?q=ink&amp;page=(\d)"', html) == ["1", "1", "3", "4", "3"]


def test_pagination_macro_hidden_for_a_single_page(app):
    add_attempts(app, 2)
    _, html = render_pager(app, "/")
    assert html.strip() == ""


def test_pagination_edges_disable_prev_and_next(app):
    add_attempts(app, 3)
    _, first = render_pager(app, "/?page=1")
    assert '<span class="disabled">&larr; Newer</span>' in first
    _, last = render_pager(app, "/?page=2")
    assert '<span class="disabled">Older &rarr;</span>' in last


def test_base_layout_navigation(client, make_user, auth, app):
    html = client.get("/").get_data(as_text=True)
    assert 'href="/auth/login"' in html and 'href="/auth/register"' in html
    assert 'href="/static/style.css"' in html
    # Nothing from elsewhere: the only absolute address is the site's own canonical link.
    assert "<script" not in html
    assert re.findall(r"https?://[^\"\s<]+", html) == [app.config["SITE_URL"] + "/"]
    make_user("alice")
    auth.login()
    html = client.get("/").get_data(as_text=True)
    assert 'href="/users/alice"' in html
    assert re.search(r'<form class="inline" method="post" action="/auth/logout">\s*'
                     r'<input id="csrf_token"', html)


def test_flashed_messages_are_shown(client, make_user, auth):
    make_user("alice")
    auth.login()
    response = auth.logout()
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You have been logged out." in html


def test_stylesheet_is_local_with_dark_mode(client):
    response = client.get("/static/style.css")
    css = response.get_data(as_text=True)
    response.close()
    assert response.status_code == 200
    assert "prefers-color-scheme: dark" in css
    assert "@import" not in css and "url(http" not in css


def test_favicon_is_linked_and_served(client) -> None:
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "image/svg+xml"
        assert b"<svg" in response.data
        response.close()


@pytest.mark.parametrize("config_overrides", [{"SITE_TAGLINE": "Prints & prose <from the coast>"}])
def test_the_tagline_comes_from_the_settings(client):
    assert "Prints &amp; prose &lt;from the coast&gt;" in client.get("/").get_data(as_text=True)
