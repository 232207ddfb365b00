"""Migrations own the schema: an empty database upgrades to the models exactly (no drift),
and a downgrade to nothing followed by an upgrade works, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from blog import create_app
from blog.accounts.models import Role, User
from blog.config import normalize_database_url
from blog.extensions import db
from blog.search.schema import include_name, include_object
from tests.conftest import TEST_DATABASE_URL, dispose, make_config


@pytest.fixture
def empty_database_url(tmp_path) -> Iterator[str]:
    """A database of its own, empty: a file on SQLite, a fresh database on PostgreSQL."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    url = make_url(normalize_database_url(TEST_DATABASE_URL))
    name = f"{url.database}_migrations"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture
def fresh_app(empty_database_url: str) -> Iterator[Flask]:
    app = create_app(make_config(empty_database_url))
    yield app
    dispose(app)


def drift(app: Flask) -> list:
    """What autogenerate would still write: empty means the migrations match the models.
    Full-text search lives outside the models and is left out, as migrations/env.py does."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_name": include_name, "include_object": include_object})
        return compare_metadata(context, db.metadata)


def table_names(app: Flask) -> set[str]:
    with app.app_context(), db.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_upgrade_builds_the_schema_with_no_drift(fresh_app):
    with fresh_app.app_context():
        flask_migrate.upgrade()
    assert {"users", "roles", "user_roles", "user_sessions", "login_attempts"} <= table_names(fresh_app)
    assert drift(fresh_app) == []


def test_admin_role_exists_but_no_admin_account(fresh_app):
    with fresh_app.app_context():
        flask_migrate.upgrade()
        roles = db.session.scalars(select(Role.name).order_by(Role.name)).all()
        assert roles == ["admin", "author", "editor"]
        assert db.session.scalars(select(User)).all() == []


def test_downgrade_to_base_then_upgrade_again(fresh_app):
    with fresh_app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
    assert table_names(fresh_app) <= {"alembic_version"}
    with fresh_app.app_context():
        flask_migrate.upgrade()
    assert drift(fresh_app) == []


def test_every_model_table_comes_from_a_migration(fresh_app):
    with fresh_app.app_context():
        flask_migrate.upgrade()
    assert set(db.metadata.tables) <= table_names(fresh_app)


def test_members_who_wrote_become_authors(fresh_app):
    """0009_roles: until then any member could write; those who did keep the right, the
    others become plain readers."""
    now = "2026-01-01 00:00:00"
    with fresh_app.app_context():
        flask_migrate.upgrade(revision="0008_profiles")
        with db.engine.begin() as connection:
            for name in ("writer", "lurker"):
                connection.execute(text(
                    "INSERT INTO users (username, username_key, email, email_key, password_hash, active,"
                    " created_at, updated_at) VALUES (:n, :n, :e, :e, 'x', :t, :now, :now)"),
                    {"n": name, "e": f"{name}@example.com", "t": True, "now": now})
            connection.execute(text(
                "INSERT INTO posts (title, slug, body, body_html, excerpt, published, author_id,"
                " created_at, updated_at) SELECT 'Hi', 'hi', 'b', '<p>b</p>', 'b', :t, id, :now, :now"
                " FROM users WHERE username = 'writer'"), {"t": True, "now": now})
        flask_migrate.upgrade()
        holders = db.session.execute(
            select(User.username, Role.name).join(User.roles).order_by(User.username)).all()
        assert [tuple(row) for row in holders] == [("writer", "author")]
        assert db.session.execute(text("SELECT members_only FROM posts")).scalar_one() in (False, 0)


def test_orders_paid_by_hand_get_their_payment_in_the_ledger(fresh_app):
    """0011_payments: orders past "pending" were paid before there was a ledger; each gets a
    manual payment of its total, so the dashboard's revenue (payments) keeps its history."""
    now = "2026-01-01 00:00:00"
    with fresh_app.app_context():
        flask_migrate.upgrade(revision="0010_media_pages")
        with db.engine.begin() as connection:
            for number, status in (("IW-PAID", "paid"), ("IW-SENT", "shipped"), ("IW-OPEN", "pending"),
                                   ("IW-GONE", "cancelled")):
                connection.execute(text(
                    "INSERT INTO orders (number, checkout_token, status, full_name, address_line1,"
                    " address_line2, city, postal_code, country, shipping_method_name, subtotal,"
                    " discount_amount, shipping_price, tax, total, created_at, updated_at)"
                    " VALUES (:n, :n, :s, 'A', 'B', '', 'C', 'D', 'E', 'Post', 1600, 0, 500, 0, 2100,"
                    " :now, :now)"), {"n": number, "s": status, "now": now})
        flask_migrate.upgrade()
        rows = db.session.execute(text(
            "SELECT o.number, p.provider, p.amount, p.status, p.refunded FROM payments p"
            " JOIN orders o ON o.id = p.order_id ORDER BY o.number")).all()
        assert [tuple(row) for row in rows] == [("IW-PAID", "manual", 2100, "succeeded", 0),
                                                ("IW-SENT", "manual", 2100, "succeeded", 0)]
        assert db.session.execute(text(
            "SELECT DISTINCT payment_provider FROM orders")).scalar_one() == "manual"
