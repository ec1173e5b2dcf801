"""Web channel: a delivery cursor per outbound webhook URL, and server-side operator sessions.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
import ticketing.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_TS = ticketing.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('webhook_cursors',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.Column('delivered_at', _TS, nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', _TS, nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('operator_sessions',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('operator_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_operator_sessions_username', ['username'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operator_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_operator_sessions_username')
    op.drop_table('operator_sessions')
    op.drop_table('webhook_cursors')
