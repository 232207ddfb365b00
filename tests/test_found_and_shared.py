"""Found and shared: the sitemap (and its index form), robots.txt, per-tag and per-author
Atom feeds, and what every page tells search engines and link previews (title, description,
canonical link, Open Graph, JSON-LD), all with absolute links from SITE_URL."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask

from blog.accounts.models import AUTHOR, User
from blog.database import utcnow
from blog.extensions import db
from blog.posts import services as posts
from tests.conftest import page_statements

SITE = "https://ink.example"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SITE_URL": SITE}


@pytest.fixture
def site(app: Flask, make_user: Any, make_product: Any) -> dict[str, Any]:
    wendy, otto = make_user("wendy", roles=(AUTHOR,)), make_user("otto", roles=(AUTHOR,))
    with app.app_context():
        author, other = db.session.get(User, wendy.id), db.session.get(User, otto.id)
        made = {
            "public": posts.create_post(author, 'Tea </script><b>"time"</b>', "Leaves and water. " * 20,
                                        "tea, leaves", True),
            "draft": posts.create_post(author, "Draft thoughts", "Not yet.", "tea", False),
            "scheduled": posts.create_post(author, "Tomorrow's news", "Soon.", "news", True,
                                           publish_at=utcnow() + timedelta(days=1)),
            "otto": posts.create_post(other, "Otto on coffee", "Beans.", "coffee", True),
        }
    made["mug"] = make_product("Mug", [("", "8.00", 5)], description="A mug for tea.")
    made["sold_out"] = make_product("Print", [("A4", "12.50", 0), ("A3", "20.00", 0)])
    make_product("Retired", [("", "1.00", 1)], active=False)
    return made


def urls_of(root: ET.Element) -> list[str]:
    return [loc.text or "" for loc in root.iter(f"{SITEMAP}loc")]


def test_the_sitemap_lists_what_everyone_may_see(client: Any, site: dict[str, Any]) -> None:
    response = client.get("/sitemap.xml", headers={"Host": "evil.example"})
    assert response.status_code == 200 and response.mimetype == "application/xml"
    root = ET.fromstring(response.data)
    assert root.tag == f"{SITEMAP}urlset"
    urls = urls_of(root)
    assert all(url.startswith(SITE + "/") for url in urls)
    assert set(urls) == {
        f"{SITE}/", f"{SITE}/shop/", f"{SITE}/posts/{site['public'].slug}", f"{SITE}/posts/otto-on-coffee",
        f"{SITE}/tags/tea", f"{SITE}/tags/leaves", f"{SITE}/tags/coffee",
        f"{SITE}/shop/products/mug", f"{SITE}/shop/products/print"}  # no draft, scheduled, retired
    for url in root.iter(f"{SITEMAP}url"):
        lastmod = url.find(f"{SITEMAP}lastmod")
        if lastmod is not None:
            assert datetime.fromisoformat(lastmod.text or "").tzinfo is not None


@pytest.mark.parametrize("config_overrides", [{"SITE_URL": SITE, "SITEMAP_MAX_URLS": 2}])
def test_a_long_sitemap_becomes_an_index_of_parts(client: Any, site: dict[str, Any]) -> None:
    root = ET.fromstring(client.get("/sitemap.xml").data)
    assert root.tag == f"{SITEMAP}sitemapindex"
    parts = urls_of(root)
    assert parts == [f"{SITE}/sitemap-{n}.xml" for n in range(1, 6)]  # 9 addresses, 2 a file
    seen = []
    for part in parts:
        part_root = ET.fromstring(client.get(part.removeprefix(SITE)).data)
        assert part_root.tag == f"{SITEMAP}urlset" and len(urls_of(part_root)) <= 2
        seen += urls_of(part_root)
    assert len(seen) == len(set(seen)) == 9
    assert client.get("/sitemap-6.xml").status_code == 404
    assert client.get("/sitemap-0.xml").status_code == 404


def test_the_sitemap_costs_the_same_statements_whatever_its_size(app: Flask, client: Any,
                                                                 site: dict[str, Any]) -> None:
    before = page_statements_any(client, "/sitemap.xml")
    with app.app_context():
        author = db.session.scalars(db.select(User).where(User.username == "wendy")).one()
        for n in range(15):
            posts.create_post(author, f"More {n}", "Text.", f"t{n}", True)
    assert page_statements_any(client, "/sitemap.xml") == before


def page_statements_any(client: Any, path: str) -> int:
    return page_statements(client, path).count


def test_robots_txt_points_at_the_sitemap(client: Any) -> None:
    response = client.get("/robots.txt")
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "User-agent: *" in text and "Disallow: /admin/" in text and "Disallow: /shop/checkout" in text
    assert f"Sitemap: {SITE}/sitemap.xml" in text


@pytest.mark.parametrize(("path", "titles"), [
    ("/tags/tea/feed.atom", ['Tea </script><b>"time"</b>']),  # not the draft tagged tea
    ("/users/wendy/feed.atom", ['Tea </script><b>"time"</b>']),  # not her draft or scheduled post
    ("/users/otto/feed.atom", ["Otto on coffee"]),
])
def test_tag_and_author_feeds(client: Any, site: dict[str, Any], path: str, titles: list[str]) -> None:
    root = ET.fromstring(client.get(path).data)
    assert [entry.findtext(f"{ATOM}title") for entry in root.findall(f"{ATOM}entry")] == titles
    assert root.find(f"{ATOM}link[@rel='self']").get("href") == SITE + path
    assert client.get("/tags/nothing/feed.atom").status_code == 404


def test_tag_and_profile_pages_link_their_feeds(client: Any, site: dict[str, Any]) -> None:
    assert 'href="/tags/tea/feed.atom"' in client.get("/tags/tea").get_data(as_text=True)
    assert 'href="/users/wendy/feed.atom"' in client.get("/users/wendy").get_data(as_text=True)


class Head(HTMLParser):
    """The <head>'s title, meta tags, links and JSON-LD."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.meta, self.links, self.json_ld = "", {}, {}, []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "title":
            self._in = "title"
        elif tag == "meta" and (values.get("name") or values.get("property")):
            self.meta[values.get("name") or values.get("property")] = values.get("content")
        elif tag == "link" and values.get("rel"):
            self.links[values["rel"]] = values.get("href")
        elif tag == "script" and values.get("type") == "application/ld+json":
            self._in = "json"

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "json":
            self.json_ld.append(json.loads(data))


def head_of(client: Any, path: str) -> Head:
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 200
    parser = Head()
    parser.feed(response.get_data(as_text=True))
    return parser


def test_a_post_page_tells_search_engines_and_previews(client: Any, site: dict[str, Any]) -> None:
    post = site["public"]
    head = head_of(client, f"/posts/{post.slug}?utm_source=newsletter")
    title = 'Tea </script><b>"time"</b>'
    assert head.title == f"{title} · Inkwell"
    assert head.meta["description"].startswith("Leaves and water.")
    assert head.links["canonical"] == f"{SITE}/posts/{post.slug}"  # without the tracking argument
    assert head.meta["og:type"] == "article" and head.meta["og:title"] == title
    assert head.meta["og:url"] == f"{SITE}/posts/{post.slug}"
    assert head.meta["article:author"] == f"{SITE}/users/wendy"
    assert datetime.fromisoformat(head.meta["article:published_time"])
    assert head.meta["twitter:card"] == "summary"
    [data] = head.json_ld  # the title's </script> stayed inside the JSON
    assert data["@type"] == "BlogPosting" and data["headline"] == title
    assert data["author"] == {"@type": "Person", "name": "wendy", "url": f"{SITE}/users/wendy"}
    assert data["mainEntityOfPage"] == f"{SITE}/posts/{post.slug}"
    assert sorted(data["keywords"]) == ["leaves", "tea"]


def test_a_product_page_carries_its_offer(client: Any, site: dict[str, Any]) -> None:
    head = head_of(client, "/shop/products/mug")
    assert head.title == "Mug · Inkwell" and head.meta["description"] == "A mug for tea."
    assert head.links["canonical"] == f"{SITE}/shop/products/mug"
    [data] = head.json_ld
    assert data["@type"] == "Product" and data["name"] == "Mug"
    assert data["offers"] == {"@type": "Offer", "price": "8.00", "priceCurrency": "USD",
                              "availability": "https://schema.org/InStock",
                              "url": f"{SITE}/shop/products/mug"}
    [sold_out] = head_of(client, "/shop/products/print").json_ld
    assert sold_out["offers"]["price"] == "12.50"
    assert sold_out["offers"]["availability"] == "https://schema.org/OutOfStock"


@pytest.mark.parametrize("path", ["/", "/shop/", "/tags/tea", "/users/wendy", "/search?q=tea",
                                  "/auth/login"])
def test_every_page_has_a_title_description_and_canonical_link(client: Any, site: dict[str, Any],
                                                                path: str) -> None:
    head = head_of(client, path)
    assert head.title and head.meta.get("description")
    assert re.fullmatch(rf"{re.escape(SITE)}/\S*", head.links["canonical"] or "")
