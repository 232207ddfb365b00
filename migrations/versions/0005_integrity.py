"""integrity: post version for optimistic edits, audit entity ids as long as what they copy

Revision ID: 0005_integrity
Revises: 0004_admin
Create Date: 2026-11-28 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_integrity'
down_revision = '0004_admin'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('entity_id', existing_type=sa.String(length=64),
                              type_=sa.String(length=320), existing_nullable=False)


def downgrade():
    # Cut longer ids first, or PostgreSQL refuses to narrow the column.
    op.execute("UPDATE audit_events SET entity_id = substr(entity_id, 1, 64)")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('entity_id', existing_type=sa.String(length=320),
                              type_=sa.String(length=64), existing_nullable=False)

    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_column('version')
