"""Production: the durable outbox of outbound mail (acknowledgements, replies, notifications) (issue 11).

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa
import ticketing.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TS = ticketing.models.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('ticket_id', _ID, nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('rfc_message_id', sa.String(length=512), nullable=False),
    sa.Column('in_reply_to', sa.String(length=512), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('message_id', _ID, nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('next_attempt_at', _TS, nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', _TS, nullable=True),
    sa.Column('sent_at', _TS, nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id']),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rfc_message_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_recipient', ['kind', 'recipient', 'created_at'], unique=False)
        batch_op.create_index('ix_outbox_kind_created', ['kind', 'created_at'], unique=False)
        batch_op.create_index('ix_outbox_ticket', ['ticket_id'], unique=False)


def downgrade() -> None:
    op.drop_table('outbox')
