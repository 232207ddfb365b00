"""What the newsletter tests share: posts made through the service."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import services


@pytest.fixture
def make_post(app: Flask) -> Any:
    """``make_post(author, "Title", "Body")``: a published post, through the service."""

    def factory(author: User, title: str, body: str = "Some text.") -> Any:
        with app.app_context():
            return services.create_post(db.session.get(User, author.id), title, body, "", True)

    return factory
