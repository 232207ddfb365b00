"""blog.urls.path_to: the links a list repeats on every row, built without url_for per link."""

from __future__ import annotations

import pytest
from flask import Flask, url_for

from blog.urls import path_to

ODD_VALUES = ["plain", "two words", "café", "a/b", "100%", "?q=1#top", "<b>&amp;", "ü ß 東京", "'\"",
              "x" * 300]


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize(("endpoint", "name"), [("blog.post", "slug"), ("blog.tag", "name"),
                                                ("blog.profile", "username")])
def test_path_to_builds_what_url_for_builds(app: Flask, endpoint: str, name: str, value: str) -> None:
    with app.test_request_context("/"):
        assert path_to(endpoint, **{name: value}) == url_for(endpoint, **{name: value})


def test_path_to_keeps_the_application_root(app: Flask) -> None:
    """Behind a path prefix (SCRIPT_NAME), the fixed parts carry it, as url_for's do."""
    with app.test_request_context("/", base_url="http://localhost/blog/"):
        assert path_to("blog.tag", name="two words") == "/blog/tags/two%20words"
        assert path_to("blog.tag", name="two words") == url_for("blog.tag", name="two words")


def test_an_endpoint_whose_converter_is_not_a_plain_string_falls_back_to_url_for(app: Flask) -> None:
    # /posts/media/<id:media_id>/delete converts integers only: no placeholder can stand in.
    with app.test_request_context("/"):
        assert path_to("blog.delete_media", media_id=7) == url_for("blog.delete_media", media_id=7)


def test_the_fixed_parts_are_built_once_per_request(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    import blog.urls

    calls: list[str] = []
    real = blog.urls.url_for

    def counting(endpoint: str, **values: object) -> str:
        calls.append(endpoint)
        return real(endpoint, **values)

    monkeypatch.setattr(blog.urls, "url_for", counting)
    with app.test_request_context("/"):
        for number in range(50):
            path_to("blog.post", slug=f"post-{number}")
    assert len(calls) == 2  # the placeholder, and the check of its quoting


def test_each_request_builds_its_own_parts_in_a_shared_app_context(app: Flask) -> None:
    """Requests in one app context (as in a test or a command) behind different prefixes
    each get their own links."""
    with app.app_context():
        with app.test_request_context("/", base_url="http://localhost/one/"):
            app.preprocess_request()
            assert path_to("blog.tag", name="x") == "/one/tags/x"
        with app.test_request_context("/", base_url="http://localhost/two/"):
            app.preprocess_request()
            assert path_to("blog.tag", name="x") == "/two/tags/x"
