"""roles: author and editor; members who have written keep writing; members-only posts

Revision ID: 0009_roles
Revises: 0008_profiles
Create Date: 2026-11-22 10:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_roles'
down_revision = '0008_profiles'
branch_labels = None
depends_on = None

roles = sa.table('roles', sa.column('id', sa.Integer), sa.column('name', sa.String),
                 sa.column('description', sa.String))
user_roles = sa.table('user_roles', sa.column('user_id', sa.Integer), sa.column('role_id', sa.Integer))
posts = sa.table('posts', sa.column('author_id', sa.Integer))


def upgrade():
    op.bulk_insert(roles, [
        {'name': 'author', 'description': 'Writes, publishes, edits and deletes their own posts.'},
        {'name': 'editor', 'description': "Edits, publishes, unpublishes and deletes anyone's posts; moderates comments."},
    ])
    # Until now every member could write: those who did keep the right (reader is the new
    # default for everyone else).
    author = sa.select(roles.c.id).where(roles.c.name == 'author').scalar_subquery()
    writers = sa.select(posts.c.author_id).distinct()
    op.execute(user_roles.insert().from_select(
        ['user_id', 'role_id'], sa.select(writers.subquery().c.author_id, author)))
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('members_only', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_column('members_only')
    role_ids = sa.select(roles.c.id).where(roles.c.name.in_(['author', 'editor']))
    op.execute(user_roles.delete().where(user_roles.c.role_id.in_(role_ids)))
    op.execute(roles.delete().where(roles.c.name.in_(['author', 'editor'])))
