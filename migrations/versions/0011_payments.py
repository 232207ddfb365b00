"""payments: the ledger (payments, refunds and their lines, provider events), orders' payment
provider and window, refunded amounts

Revision ID: 0011_payments
Revises: 0010_media_pages
Create Date: 2026-12-05 07:31:11.380565

"""
from alembic import op
import sqlalchemy as sa
from flask import current_app, has_app_context


# revision identifiers, used by Alembic.
revision = '0011_payments'
down_revision = '0010_media_pages'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payment_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('order_number', sa.String(length=20), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_events')),
    sa.UniqueConstraint('provider', 'event_id', name='uq_payment_events_provider_event_id')
    )
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_events_order_number'), ['order_number'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=False),
    sa.Column('charge_reference', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunded', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_payments_status_known')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_payments_amount_not_negative')),
    sa.CheckConstraint('refunded >= 0 AND refunded <= amount', name=op.f('ck_payments_refunded_within_amount')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('provider', 'reference', name='uq_payments_provider_reference')
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('shipping', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('restock', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('provider_reference', sa.String(length=255), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_refunds_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_amount_positive')),
    sa.CheckConstraint('shipping >= 0 AND shipping <= amount', name=op.f('ck_refunds_shipping_within_amount')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_refunds_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_refunds_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_refunds_idempotency_key'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_order_id_created_at', ['order_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_payment_id'), ['payment_id'], unique=False)

    op.create_table('refund_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_id', sa.Integer(), nullable=False),
    sa.Column('order_item_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_refund_lines_amount_not_negative')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_refund_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['order_item_id'], ['order_items.id'], name=op.f('fk_refund_lines_order_item_id_order_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_refund_lines_refund_id_refunds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund_lines'))
    )
    with op.batch_alter_table('refund_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_lines_order_item_id'), ['order_item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refund_lines_refund_id'), ['refund_id'], unique=False)

    with op.batch_alter_table('order_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refunded_quantity', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.create_check_constraint(op.f('ck_order_items_refunded_quantity_within_quantity'),
                                         'refunded_quantity >= 0 AND refunded_quantity <= quantity')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_provider', sa.String(length=20), server_default='manual', nullable=False))
        batch_op.add_column(sa.Column('payment_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('refunded_total', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('refunded_shipping', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.create_check_constraint(op.f('ck_orders_refunded_within_total'),
                                         'refunded_total >= 0 AND refunded_total <= total')
        batch_op.create_check_constraint(op.f('ck_orders_refunded_shipping_within_shipping'),
                                         'refunded_shipping >= 0 AND refunded_shipping <= shipping_price')
        batch_op.create_index('ix_orders_status_payment_due_at', ['status', 'payment_due_at'], unique=False)

    # Orders past "pending" were paid by hand before there was a ledger: record those
    # payments (the dashboard's revenue counts payments), at the order's last change.
    currency = current_app.config.get('SHOP_CURRENCY', 'USD') if has_app_context() else 'USD'
    op.execute(sa.text(
        "INSERT INTO payments (order_id, provider, reference, amount, currency, refunded, status, "
        "paid_at, created_at, updated_at) "
        "SELECT id, 'manual', 'manual-' || number, total, :currency, 0, 'succeeded', updated_at, "
        "updated_at, updated_at FROM orders WHERE status IN ('paid', 'shipped', 'delivered')"
    ).bindparams(currency=str(currency).upper()[:3]))


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_payment_due_at')
        batch_op.drop_constraint(op.f('ck_orders_refunded_shipping_within_shipping'), type_='check')
        batch_op.drop_constraint(op.f('ck_orders_refunded_within_total'), type_='check')
        batch_op.drop_column('refunded_shipping')
        batch_op.drop_column('refunded_total')
        batch_op.drop_column('payment_due_at')
        batch_op.drop_column('payment_provider')

    with op.batch_alter_table('order_items', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_order_items_refunded_quantity_within_quantity'), type_='check')
        batch_op.drop_column('refunded_quantity')

    with op.batch_alter_table('refund_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_lines_refund_id'))
        batch_op.drop_index(batch_op.f('ix_refund_lines_order_item_id'))

    op.drop_table('refund_lines')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_payment_id'))
        batch_op.drop_index('ix_refunds_order_id_created_at')

    op.drop_table('refunds')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_order_id'))

    op.drop_table('payments')
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_events_order_number'))

    op.drop_table('payment_events')
