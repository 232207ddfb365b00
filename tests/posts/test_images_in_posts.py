"""Pictures in posts come from the site only: an off-site image becomes a link with its alt
text (so the Content-Security-Policy never blocks one), and a site image gets its size,
lazy loading and the stored sizes as srcset."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from blog.extensions import db
from blog.posts.models import Post
from blog.rendering import render_markdown

STORED = "0123456789abcdef0123456789abcdef-1600x1200.webp"
THUMB = "0123456789abcdef0123456789abcdef-1600x1200-thumb.webp"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SITE_URL": "https://ink.example", "THUMBNAIL_SIZE": 400}


@pytest.mark.parametrize("src", ["https://evil.example/cat.png", "//evil.example/cat.png",
                                 "http://ink.example/uploads/" + STORED,  # wrong scheme
                                 "/uploads/../config.py", "/uploads/cat.png", "/static/favicon.svg"])
def test_an_image_from_elsewhere_becomes_a_link(app: Flask, src: str) -> None:
    with app.app_context():
        html = render_markdown(f"Look: ![A cat on a wall]({src})")
    assert "<img" not in html
    link = re.search(r'<a href="([^"]+)" rel="nofollow noopener">A cat on a wall</a>', html)
    assert link, html


@pytest.mark.parametrize("src", [f"/uploads/{STORED}", f"https://ink.example/uploads/{STORED}"])
def test_a_site_image_gets_its_size_lazy_loading_and_srcset(app: Flask, src: str) -> None:
    with app.app_context():
        html = render_markdown(f'![A print "framed"]({src} "On the wall")')
    [img] = re.findall(r"<img [^>]+>", html)
    assert f'src="/uploads/{STORED}"' in img and 'alt="A print &quot;framed&quot;"' in img
    assert 'width="1600" height="1200"' in img and 'loading="lazy"' in img
    assert f'srcset="/uploads/{THUMB} 400w, /uploads/{STORED} 1600w"' in img
    assert 'title="On the wall"' in img and "sizes=" in img


def test_rerendering_applies_the_rule_to_old_posts(app: Flask, runner: Any, make_user: Any,
                                                   make_post: Any, client: Any) -> None:
    alice = make_user("alice")
    post = make_post(alice, "Old", "![A cat](https://evil.example/cat.png)")
    with app.app_context():
        db.session.execute(update(Post).where(Post.id == post.id).values(
            body_html='<p><img src="https://evil.example/cat.png" alt="A cat"></p>'))
        db.session.commit()
    assert runner.invoke(args=["rerender-posts"]).output.strip() == "Re-rendered 1 post whose HTML changed."
    page = client.get("/posts/old").get_data(as_text=True)
    assert "<img" not in page.split('class="post-body"', 1)[1].split("</div>", 1)[0]
    assert '<a href="https://evil.example/cat.png" rel="nofollow noopener">A cat</a>' in page
