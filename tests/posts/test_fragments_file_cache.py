"""The visitors' list cache on the file cache (what a site without Redis runs): a version that
outlived CACHE_DEFAULT_TIMEOUT is replaced, and lists are cached again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from blog.extensions import cache
from tests.conftest import page_statements


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}


def test_lists_are_cached_again_after_the_version_expired(app: Flask, client, make_user, make_post):
    make_post(make_user("alice"), "First words")
    with app.app_context():
        # As the version is left after CACHE_DEFAULT_TIMEOUT: its file there, but expired.
        assert cache.set("posts:version", "old", timeout=1)
    time.sleep(1.1)
    with app.app_context():
        assert cache.get("posts:version") is None
    assert page_statements(client, "/").count > 0
    assert page_statements(client, "/").count == 0  # served from the cache again
    assert "First words" in client.get("/").get_data(as_text=True)
