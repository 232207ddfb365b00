"""outbox: every email as a row, written with the event that causes it, delivered by a job

Revision ID: 0007_outbox
Revises: 0006_discounts
Create Date: 2026-11-22 09:40:00.000000

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0007_outbox'
down_revision = '0006_discounts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'email_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('text_body', sa.Text(), nullable=False),
        sa.Column('html_body', sa.Text(), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=1000), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')",
                           name=op.f('ck_email_messages_status_known')),
        sa.CheckConstraint('attempts >= 0', name=op.f('ck_email_messages_attempts_not_negative')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_email_messages')),
    )
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.create_index('ix_email_messages_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_email_messages_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_messages_recipient'), ['recipient'], unique=False)


def downgrade():
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_messages_recipient'))
        batch_op.drop_index('ix_email_messages_created_at')
        batch_op.drop_index('ix_email_messages_status_next_attempt_at')
    op.drop_table('email_messages')
