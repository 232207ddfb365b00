"""search: full-text indexes for posts (title, body, tags) and products (name, description);
posts.tag_names

SQLite: FTS5 external-content tables posts_fts and products_fts, kept in step by triggers.
PostgreSQL: generated, weighted search_vector columns with GIN indexes, built with the
text search configuration inkwell_search (Porter stemming, unaccent when available).
The DDL comes from blog.search.schema, shared with any later migration that must rebuild it.

NOTE for later migrations: on SQLite, op.batch_alter_table('posts') or ('products') copies,
drops and renames the table, and the drop removes the FTS triggers. Such a migration must
run blog.search.schema.sqlite_triggers(...) for that table afterwards (and sqlite_rebuild
if it changed an indexed column); see that module.

Revision ID: 0014_search
Revises: 0013_keyset
Create Date: 2026-12-06 09:00:00.000000

"""
from alembic import context, op
import sqlalchemy as sa

from blog.search import schema


# revision identifiers, used by Alembic.
revision = '0014_search'
down_revision = '0013_keyset'
branch_labels = None
depends_on = None


def _run(statements):
    for statement in statements:
        op.execute(statement)


def upgrade():
    # A plain ADD COLUMN (no batch): SQLite adds a NOT NULL column with a default in place,
    # and a batch rebuild of posts is exactly what would drop triggers.
    op.add_column('posts', sa.Column('tag_names', sa.Text(), server_default='', nullable=False))
    dialect = op.get_context().dialect.name
    if dialect == 'postgresql':
        op.execute(
            "UPDATE posts SET tag_names = names.joined FROM ("
            " SELECT pt.post_id, string_agg(t.name, ' ' ORDER BY t.name) AS joined"
            " FROM post_tags pt JOIN tags t ON t.id = pt.tag_id GROUP BY pt.post_id) AS names"
            " WHERE names.post_id = posts.id")
        # Offline (--sql) there is no server to ask: the script installs the extension.
        if context.is_offline_mode():
            op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
            unaccent = True
        else:
            unaccent = schema.ensure_unaccent(op.get_bind())
        _run(schema.postgresql_setup(unaccent))
        for target in schema.INDEXED:
            _run(schema.postgresql_create(target))
    else:
        op.execute(
            "UPDATE posts SET tag_names = coalesce((SELECT group_concat(name, ' ') FROM ("
            " SELECT t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id"
            " WHERE pt.post_id = posts.id ORDER BY t.name)), '')")
        for target in schema.INDEXED:
            _run(schema.sqlite_create(target))


def downgrade():
    dialect = op.get_context().dialect.name
    if dialect == 'postgresql':
        for target in schema.INDEXED:
            _run(schema.postgresql_drop(target))
        _run(schema.postgresql_teardown())
    else:
        for target in schema.INDEXED:
            _run(schema.sqlite_drop(target))
    # The triggers are gone, so the batch rebuild of posts on SQLite loses nothing.
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_column('tag_names')
