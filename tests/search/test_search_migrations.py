"""0014_search and 0015_title_search: the full-text indexes come from the migrations (never
from the models), are filled from existing rows, survive a downgrade and upgrade, and are no
drift for Alembic."""

from __future__ import annotations

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from flask import Flask
from sqlalchemy import Connection, inspect, text

from blog.extensions import db
from blog.search import parse, post_search, product_search, schema, title_matches
from tests.test_migrations import drift

NOW = "2026-01-01 00:00:00"


def _dialect(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


def _search_ids(app: Flask, text_: str, products: bool = False) -> set[int]:
    query = parse(text_)
    assert query is not None
    with app.app_context():
        matches = (product_search if products else post_search)(query)
        return {row.id for row in db.session.execute(matches.select())}


def _write_posts(app: Flask) -> None:
    """A member, two tags and a tagged post, written as the schema of 0013 had them."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, active,"
            " created_at, updated_at) VALUES (1, 'w', 'w', 'w@example.com', 'w@example.com', 'x', :t,"
            " :now, :now)"), {"t": True, "now": NOW})
        connection.execute(text(
            "INSERT INTO posts (id, title, slug, body, body_html, excerpt, published, author_id,"
            " created_at, updated_at) VALUES (1, 'Lighthouses', 'lighthouses', 'Tall towers by the sea.',"
            " '', '', :t, 1, :now, :now)"), {"t": True, "now": NOW})
        connection.execute(text("INSERT INTO tags (id, name) VALUES (1, 'maritime'), (2, 'coast')"))
        connection.execute(text("INSERT INTO post_tags (post_id, tag_id) VALUES (1, 1), (1, 2)"))
        connection.execute(text(
            "INSERT INTO products (id, name, slug, description, active, created_at, updated_at)"
            " VALUES (1, 'Brass compass', 'brass-compass', 'Points north.', :t, :now, :now)"),
            {"t": True, "now": NOW})


def test_existing_rows_are_indexed_and_tags_copied(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade(revision="0013_keyset")
    _write_posts(fresh_app)
    with fresh_app.app_context():
        flask_migrate.upgrade()
        assert db.session.scalar(text("SELECT tag_names FROM posts WHERE id = 1")) == "coast maritime"
    assert _search_ids(fresh_app, "towers") == {1}
    assert _search_ids(fresh_app, "maritime") == {1}
    assert _search_ids(fresh_app, "lighthouse") == {1}
    assert _search_ids(fresh_app, "north", products=True) == {1}
    assert drift(fresh_app) == []


def test_the_index_objects_exist_at_head(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade()
    with fresh_app.app_context(), db.engine.connect() as connection:
        if _dialect(fresh_app) == "sqlite":
            triggers = set(connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
            for target in schema.SQLITE_INDEXED:
                assert {f"{target.fts}_insert", f"{target.fts}_update", f"{target.fts}_delete"} <= triggers
                assert connection.scalar(text(
                    "SELECT sql FROM sqlite_master WHERE name = :name"), {"name": target.fts}).startswith(
                    "CREATE VIRTUAL TABLE")
        else:
            inspector = inspect(connection)
            for target in schema.INDEXED:
                columns = {c["name"]: c for c in inspector.get_columns(target.table)}
                assert "computed" in columns[schema.VECTOR_COLUMN]
                assert target.vector_index in {i["name"] for i in inspector.get_indexes(target.table)}
            assert connection.scalar(text("SELECT 1 FROM pg_ts_config WHERE cfgname = :name"),
                                     {"name": schema.SEARCH_CONFIG})


def test_the_search_objects_would_be_drift_without_the_filters(fresh_app: Flask) -> None:
    """The filters in migrations/env.py are what keeps `flask db check` quiet."""
    with fresh_app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            unfiltered = compare_metadata(context, db.metadata)
    assert unfiltered and drift(fresh_app) == []


def test_downgrade_and_upgrade_keep_search_working(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade()
    _write_posts_at_head(fresh_app)
    with fresh_app.app_context():
        flask_migrate.downgrade(revision="0013_keyset")
    with fresh_app.app_context(), db.engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
        assert not {name for name in names if schema.is_fts_table(name)}
        assert "tag_names" not in {c["name"] for c in inspect(connection).get_columns("posts")}
    with fresh_app.app_context():
        flask_migrate.upgrade()
    assert _search_ids(fresh_app, "towers") == {1}
    assert _search_ids(fresh_app, "maritime") == {1}
    # ...and the triggers (or the generated column) follow new writes again.
    with fresh_app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE posts SET title = 'Windmills', tag_names = 'inland' WHERE id = 1"))
    assert _search_ids(fresh_app, "lighthouse") == set()
    assert _search_ids(fresh_app, "windmill") == {1}
    assert _search_ids(fresh_app, "inland") == {1}
    assert _title_ids(fresh_app, "windmill") == {1}
    assert _title_ids(fresh_app, "lighthouse") == _title_ids(fresh_app, "inland") == set()
    with fresh_app.app_context(), db.engine.begin() as connection:
        connection.execute(text("DELETE FROM posts WHERE id = 1"))
    assert _search_ids(fresh_app, "windmill") == set()
    assert _title_ids(fresh_app, "windmill") == set()
    assert drift(fresh_app) == []


def _title_ids(app: Flask, text_: str) -> set[int]:
    query = parse(text_)
    assert query is not None
    with app.app_context():
        return {post_id for post_id, _ in title_matches(query, 10)}


def test_the_title_index_is_filled_from_existing_rows(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade(revision="0014_search")
    _write_posts(fresh_app)
    with fresh_app.app_context():
        flask_migrate.upgrade()
    assert _title_ids(fresh_app, "lighthouses") == {1}
    assert _title_ids(fresh_app, "towers") == set()  # a body word: not in the titles' index
    with fresh_app.app_context():
        flask_migrate.downgrade(revision="0014_search")
        with db.engine.connect() as connection:
            assert "posts_title_fts" not in set(inspect(connection).get_table_names())
    assert drift(fresh_app) == []


def _write_posts_at_head(app: Flask) -> None:
    _write_posts(app)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE posts SET tag_names = 'coast maritime' WHERE id = 1"))


def test_a_batch_rebuild_drops_the_triggers_and_schema_brings_them_back(fresh_app: Flask) -> None:
    """Why schema.py warns: Alembic's SQLite batch mode (copy, drop, rename) loses the
    triggers, and what a later migration that batch-alters posts must run afterwards."""
    with fresh_app.app_context():
        flask_migrate.upgrade()
        if db.engine.dialect.name != "sqlite":
            return  # PostgreSQL alters tables in place: the generated column stays
    _write_posts_at_head(fresh_app)

    def posts_triggers(connection: Connection) -> int:
        return connection.scalar(text(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'posts'"))

    with fresh_app.app_context(), db.engine.connect() as connection:
        # As migrations/env.py does: no cascading deletes while the table is rebuilt.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with connection.begin():
            operations = Operations(MigrationContext.configure(connection))
            with operations.batch_alter_table("posts", recreate="always"):
                pass
            assert posts_triggers(connection) == 0
            for statement in schema.sqlite_triggers(schema.POSTS):
                connection.exec_driver_sql(statement)
            assert posts_triggers(connection) == 3
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    assert _search_ids(fresh_app, "lighthouse") == {1}  # the rows kept their ids: index intact
    with fresh_app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE posts SET title = 'Windmills' WHERE id = 1"))
    assert _search_ids(fresh_app, "windmill") == {1}
    assert _search_ids(fresh_app, "lighthouse") == set()
