"""newsletter: subscribers, one send per post, one delivery per send and subscriber;
posts.send_newsletter

Revision ID: 0012_newsletter
Revises: 0011_payments
Create Date: 2026-12-05 08:16:48.446631

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_newsletter'
down_revision = '0011_payments'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscribers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('email_key', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bounced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmation_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')", name=op.f('ck_subscribers_status_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_subscribers_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('email_key', name=op.f('uq_subscribers_email_key'))
    )
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index('ix_subscribers_status_id', ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscribers_user_id'), ['user_id'], unique=False)

    op.create_table('newsletter_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('waiting', 'sending', 'done')", name=op.f('ck_newsletter_sends_status_known')),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], name=op.f('fk_newsletter_sends_post_id_posts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_newsletter_sends')),
    sa.UniqueConstraint('post_id', name=op.f('uq_newsletter_sends_post_id'))
    )
    with op.batch_alter_table('newsletter_sends', schema=None) as batch_op:
        batch_op.create_index('ix_newsletter_sends_status', ['status'], unique=False)

    op.create_table('newsletter_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')", name=op.f('ck_newsletter_deliveries_status_known')),
    sa.ForeignKeyConstraint(['send_id'], ['newsletter_sends.id'], name=op.f('fk_newsletter_deliveries_send_id_newsletter_sends'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_newsletter_deliveries_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_newsletter_deliveries')),
    sa.UniqueConstraint('send_id', 'subscriber_id', name='uq_newsletter_deliveries_send_id_subscriber_id')
    )
    with op.batch_alter_table('newsletter_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_newsletter_deliveries_send_id_status', ['send_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_newsletter_deliveries_subscriber_id'), ['subscriber_id'], unique=False)

    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_newsletter', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade():
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_column('send_newsletter')

    with op.batch_alter_table('newsletter_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_newsletter_deliveries_subscriber_id'))
        batch_op.drop_index('ix_newsletter_deliveries_send_id_status')

    op.drop_table('newsletter_deliveries')
    with op.batch_alter_table('newsletter_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_newsletter_sends_status')

    op.drop_table('newsletter_sends')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscribers_user_id'))
        batch_op.drop_index('ix_subscribers_status_id')

    op.drop_table('subscribers')
