"""discounts: an optional limit on how many of one customer's orders may use a code

Revision ID: 0006_discounts
Revises: 0005_integrity
Create Date: 2026-11-22 07:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_discounts'
down_revision = '0005_integrity'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('discounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('per_customer_limit', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_discounts_per_customer_limit_positive'),
            'per_customer_limit IS NULL OR per_customer_limit >= 1')


def downgrade():
    with op.batch_alter_table('discounts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_discounts_per_customer_limit_positive'), type_='check')
        batch_op.drop_column('per_customer_limit')
