"""Static pages and site settings: what an admin writes shows on every page at once, costs no
statement once cached, and bad input changes nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.admin.models import AuditEvent
from blog.extensions import db
from blog.pages import services as pages
from blog.pages.models import Page, SiteSetting
from tests.conftest import AuthActions, csrf_token, page_statements, text_of


@pytest.fixture
def admin(auth: AuthActions, make_user: Any) -> Any:
    user = make_user("root", admin=True)
    auth.login("root")
    return user


def save_page(client: Any, path: str = "/admin/pages/new", **fields: Any) -> Any:
    data = {"title": "About us", "slug": "", "body": "We write **slowly**.", "place": "nav",
            "position": "0"} | fields
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/pages/new"), **data})


def save_settings(client: Any, **fields: str) -> Any:
    data = {"title": "Inkwell", "tagline": "Writing and things we make.",
            "description": "Essays, notes and prints from a small independent publication.",
            "footer": "", "social_links": ""} | fields
    return client.post("/admin/settings", data={"csrf_token": csrf_token(client, "/admin/settings"),
                                                **data})


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


# --- pages ------------------------------------------------------------------------------------


def test_an_about_page_in_the_navigation(app: Flask, client: Any, admin: Any) -> None:
    response = save_page(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/pages")
    home = text_of(client.get("/"))
    assert '<a href="/pages/about-us">About us</a>' in home
    page = client.get("/pages/about-us")
    assert page.status_code == 200
    body = text_of(page)
    assert "<strong>slowly</strong>" in body and "<title>About us · Inkwell</title>" in body
    assert '<meta name="description" content="We write slowly.">' in body
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "page")).one()
    assert (event.action, event.entity_id, event.actor_name) == ("create", "about-us", "root")


def test_footer_pages_and_their_order(client: Any, admin: Any) -> None:
    save_page(client, title="Contact", place="footer", position="2")
    save_page(client, title="Imprint", place="footer", position="1")
    save_page(client, title="Hidden", place="none")
    html = text_of(client.get("/"))
    footer = html[html.index('<footer'):]
    assert footer.index("Imprint") < footer.index("Contact")
    assert "/pages/hidden" not in html
    assert client.get("/pages/hidden").status_code == 200  # reachable by its address


def test_visitors_see_pages_and_only_admins_manage_them(client: Any, auth: AuthActions,
                                                        make_user: Any, admin: Any) -> None:
    save_page(client)
    auth.logout()
    assert client.get("/pages/about-us").status_code == 200
    assert client.get("/pages/nothing-here").status_code == 404
    assert client.get("/admin/pages").status_code == 302  # to the login page
    make_user("alice")
    auth.login("alice")
    for path in ("/admin/pages", "/admin/pages/new", "/admin/settings"):
        assert client.get(path).status_code == 403


@pytest.mark.parametrize(("fields", "message"), [
    ({"title": "  "}, "This field is required."),
    ({"body": ""}, "This field is required."),
    ({"slug": "About Us"}, "Use lower-case letters, digits and dashes, such as “about-us”."),
    ({"place": "sidebar"}, "Not a valid choice."),
    ({"position": "many"}, "Not a valid integer value."),
])
def test_a_bad_page_is_refused_and_nothing_is_saved(app: Flask, client: Any, admin: Any,
                                                    fields: dict[str, str], message: str) -> None:
    response = save_page(client, **fields)
    assert response.status_code == 400
    assert message in text_of(response)
    assert count(app, Page) == 0


def test_two_pages_cannot_share_an_address(app: Flask, client: Any, admin: Any) -> None:
    save_page(client, slug="about")
    response = save_page(client, title="Another", slug="about")
    assert response.status_code == 400
    assert "Another page has that address." in text_of(response)
    assert count(app, Page) == 1


def test_editing_and_deleting_a_page(app: Flask, client: Any, admin: Any) -> None:
    save_page(client)
    with app.app_context():
        page_id = db.session.scalar(select(Page.id))
    response = save_page(client, f"/admin/pages/{page_id}/edit", title="About", slug="about-us",
                         place="footer")
    assert response.status_code == 302
    html = text_of(client.get("/"))
    assert html.index("<footer") < html.index('<a href="/pages/about-us">About</a>')
    response = client.post(f"/admin/pages/{page_id}/delete",
                           data={"csrf_token": csrf_token(client, "/admin/pages")})
    assert response.status_code == 302
    assert client.get("/pages/about-us").status_code == 404
    assert "/pages/about-us" not in client.get("/").get_data(as_text=True)
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "page")
                                     .order_by(AuditEvent.id)).all()
    assert actions == ["create", "update", "delete"]


def test_a_page_body_is_sanitized(client: Any, admin: Any) -> None:
    save_page(client, body='<script>alert(1)</script> [x](javascript:alert(1)) ![a](https://evil.example/a.png)')
    html = client.get("/pages/about-us").get_data(as_text=True)
    body = html[html.index('<div class="post-body">'):html.index("</article>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown as text, never run
    assert 'href="javascript:' not in body
    assert "<img" not in body and '<a href="https://evil.example/a.png" rel="nofollow noopener">a</a>' in body


def test_the_sitemap_lists_the_pages(client: Any, admin: Any) -> None:
    save_page(client, place="none")
    root = ET.fromstring(client.get("/sitemap.xml").data)
    locs = [loc.text for loc in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert any(loc and loc.endswith("/pages/about-us") for loc in locs)


def test_a_page_runs_a_fixed_number_of_statements(client: Any, admin: Any) -> None:
    save_page(client, body="short")
    save_page(client, title="Long", body="A long page. " * 2000)
    assert page_statements(client, "/pages/about-us").count == page_statements(client, "/pages/long").count


# --- settings ---------------------------------------------------------------------------------


def test_a_new_tagline_on_the_home_page(app: Flask, client: Any, admin: Any) -> None:
    response = save_settings(client, title="The Quarterly", tagline="Slow news, well made.",
                             footer="© The Quarterly collective",
                             social_links="Mastodon https://example.social/@q\nRSS https://ink.example/feed.atom")
    assert response.status_code == 302
    html = text_of(client.get("/"))
    assert "Slow news, well made." in html and "Writing and things we make." not in html
    assert "<title>The Quarterly</title>" in html
    assert "© The Quarterly collective" in html
    assert '<a href="https://example.social/@q" rel="me noopener">Mastodon</a>' in html
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "settings")).one()
        assert event.changes["tagline"] == ["Writing and things we make.", "Slow news, well made."]
        assert set(event.changes) == {"title", "tagline", "footer", "social_links"}
        assert pages.current_site().title == "The Quarterly"


def test_the_site_title_names_the_site_in_emails_and_feeds(app: Flask, client: Any, admin: Any) -> None:
    save_settings(client, title="The Quarterly")
    feed = ET.fromstring(client.get("/feed.atom").data)
    assert feed.findtext("{http://www.w3.org/2005/Atom}title") == "The Quarterly"
    with app.app_context():
        from blog.urls import site_name

        assert site_name() == "The Quarterly"


def test_a_value_back_at_its_default_is_not_stored(app: Flask, client: Any, admin: Any) -> None:
    save_settings(client, tagline="Something else")
    assert count(app, SiteSetting) == 1
    save_settings(client)  # everything as configured
    assert count(app, SiteSetting) == 0
    assert "Writing and things we make." in text_of(client.get("/"))
    app.config["SITE_TAGLINE"] = "A new default from the configuration"
    with app.app_context():
        pages.forget_site()
    assert "A new default from the configuration" in text_of(client.get("/"))


@pytest.mark.parametrize(("fields", "message"), [
    ({"title": ""}, "This field is required."),
    ({"tagline": "x" * 201}, "Field cannot be longer than 200 characters."),
    ({"social_links": "Mastodon example.social/@q"}, "Line 1: write a name, a space and a web address"),
    ({"social_links": "Bad javascript:alert(1)"}, "Line 1: write a name, a space and a web address"),
    ({"social_links": "\n".join(f"L{i} https://e.example/{i}" for i in range(11))}, "Give at most 10 links."),
])
def test_bad_settings_change_nothing(app: Flask, client: Any, admin: Any, fields: dict[str, str],
                                     message: str) -> None:
    response = save_settings(client, tagline="Changed", **fields) if "tagline" not in fields \
        else save_settings(client, **fields)
    assert response.status_code == 400
    assert message in text_of(response)
    assert count(app, SiteSetting) == 0
    assert "Writing and things we make." in text_of(client.get("/"))


# --- the cache --------------------------------------------------------------------------------


def test_the_site_costs_two_statements_once_then_none(app: Flask, client: Any, admin: Any) -> None:
    save_page(client)
    with app.app_context():
        pages.forget_site()
    from blog.database import count_statements

    with count_statements() as first:
        client.get("/pages/about-us")
    with count_statements() as second:
        client.get("/pages/about-us")
    assert first.count == second.count + 2
    assert not any("site_settings" in sql or "pages.place IN" in sql for sql in second.statements)


def test_a_change_shows_in_another_worker_at_once(tmp_path: Any, database_url: str) -> None:
    """Two apps sharing one file cache, like two gunicorn workers on one machine: what one
    forgets after a write, the other reads again."""
    from blog import create_app
    from tests.conftest import dispose, make_config

    config = make_config(database_url, CACHE_TYPE="FileSystemCache", CACHE_DIR=str(tmp_path))
    first, second = create_app(config), create_app(config)
    try:
        with first.app_context():
            assert pages.current_site().title == "Inkwell"
        with second.app_context():
            assert isinstance(pages.cache.get("site"), pages.Site)  # filled by the first
            pages.forget_site()
        with first.app_context():
            assert pages.cache.get("site") is None
    finally:
        dispose(first)
        dispose(second)


def test_a_cache_that_is_down_is_passed_by(app: Flask, client: Any, admin: Any) -> None:
    """Redis gone: pages still show, read from the database; saving still works."""
    from flask_caching import Cache

    dead = Cache()
    dead.init_app(app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://127.0.0.1:1/0",
                               "CACHE_OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}})
    original = pages.cache.cache
    app.extensions["cache"][pages.cache] = dead.cache
    try:
        assert client.get("/").status_code == 200
        assert save_settings(client, tagline="Still saved").status_code == 302
        assert "Still saved" in text_of(client.get("/"))
    finally:
        app.extensions["cache"][pages.cache] = original
