"""title search: on SQLite, an FTS5 index of the posts' titles alone (posts_title_fts)

A search that matches a large part of the blog ranks its title matches first without
ranking every match (blog.search.sql.title_matches): the titles' doclists are short, where
reading a common word's doclist in posts_fts means reading every body that has it.
PostgreSQL needs nothing: ts_rank ranks every match cheaply there.

The same NOTE as 0014: a later batch_alter_table('posts') on SQLite must run
blog.search.schema.sqlite_triggers(...) for every index in schema.SQLITE_INDEXED.

Revision ID: 0015_title_search
Revises: 0014_search
Create Date: 2026-12-07 03:30:00.000000

"""
from alembic import op

from blog.search import schema


# revision identifiers, used by Alembic.
revision = '0015_title_search'
down_revision = '0014_search'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_context().dialect.name == 'sqlite':
        for statement in schema.sqlite_create(schema.POST_TITLES):
            op.execute(statement)


def downgrade():
    if op.get_context().dialect.name == 'sqlite':
        for statement in schema.sqlite_drop(schema.POST_TITLES):
            op.execute(statement)
