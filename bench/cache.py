"""Inkwell's cache with the post lists left out, for measuring what a list costs to make.

Inkwell keeps a visitor's list of posts in its cache (``blog.posts.fragments``), so most
visitor requests run no SQL at all. That is the point of it, and the headline rows measure
the app with it; but the first visitor after every change, and every member, get a list
made afresh, and that is what the list rows (deep pages, page size, statements) and the
"cache off" rows measure. Switching the whole cache off (``NullCache``) would also read the
site's settings from the database on every request, which no deployment does; this cache
keeps everything but the lists, exactly as the deployed one (files, no Redis) does.

    FLASK_CACHE_TYPE=bench.cache.ListlessCache FLASK_CACHE_DIR=... gunicorn wsgi:app
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_caching.backends.filesystemcache import FileSystemCache

#: What the list cache's keys start with (its version and its lists), after the prefix.
LIST_KEYS = "posts:"


def _is_list(key: str) -> bool:
    return LIST_KEYS in key


class ListlessCache(FileSystemCache):
    """A file cache that never holds a post list: asked for one it has none, and told to
    keep one it declines (so the list cache has no version and caches nothing)."""

    def get(self, key: str) -> Any:
        return None if _is_list(key) else super().get(key)

    def set(self, key: str, value: Any, timeout: int | timedelta | None = None,
            mgmt_element: bool = False) -> bool:
        return False if _is_list(key) else bool(super().set(key, value, timeout, mgmt_element))

    def add(self, key: str, value: Any, timeout: int | timedelta | None = None) -> bool:
        return False if _is_list(key) else bool(super().add(key, value, timeout))
