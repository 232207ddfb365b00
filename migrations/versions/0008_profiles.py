"""profiles: display name, bio, website, avatar, verified email, comment notifications

Revision ID: 0008_profiles
Revises: 0007_outbox
Create Date: 2026-11-22 10:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_profiles'
down_revision = '0007_outbox'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('display_name', sa.String(length=60), server_default='', nullable=False))
        batch_op.add_column(sa.Column('bio', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('website', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('avatar', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('notify_comments', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('notify_comments')
        batch_op.drop_column('avatar')
        batch_op.drop_column('website')
        batch_op.drop_column('bio')
        batch_op.drop_column('display_name')
        batch_op.drop_column('email_verified_at')
