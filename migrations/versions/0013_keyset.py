"""keyset: the id ends each list index, so a page seeks to its first row (published_at, id)
with one index range whatever the depth

Revision ID: 0013_keyset
Revises: 0012_newsletter
Create Date: 2026-12-05 12:04:54.258007

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_keyset'
down_revision = '0012_newsletter'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_created_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_entity_type_created_at'))
        batch_op.create_index('ix_audit_events_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_entity_type_created_at_id', ['entity_type', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_created_at'))
        batch_op.create_index('ix_comments_created_at_id', ['created_at', 'id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_created_at'))
        batch_op.drop_index(batch_op.f('ix_orders_status_created_at'))
        batch_op.create_index('ix_orders_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_orders_status_created_at_id', ['status', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_posts_author_id_published_at'))
        batch_op.drop_index(batch_op.f('ix_posts_published_published_at'))
        batch_op.create_index('ix_posts_author_id_published_at_id', ['author_id', 'published_at', 'id'], unique=False)
        batch_op.create_index('ix_posts_published_published_at_id', ['published', 'published_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_index('ix_posts_published_published_at_id')
        batch_op.drop_index('ix_posts_author_id_published_at_id')
        batch_op.create_index(batch_op.f('ix_posts_published_published_at'), ['published', 'published_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_posts_author_id_published_at'), ['author_id', 'published_at'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_created_at_id')
        batch_op.drop_index('ix_orders_created_at_id')
        batch_op.create_index(batch_op.f('ix_orders_status_created_at'), ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index('ix_comments_created_at_id')
        batch_op.create_index(batch_op.f('ix_comments_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_entity_type_created_at_id')
        batch_op.drop_index('ix_audit_events_created_at_id')
        batch_op.create_index(batch_op.f('ix_audit_events_entity_type_created_at'), ['entity_type', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_created_at'), ['created_at'], unique=False)
