"""Transcription jobs: one durable row per call recording to transcribe (ticketing/transcription.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:40:00
"""

from alembic import op
import sqlalchemy as sa
import ticketing.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = ticketing.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('transcription_jobs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('ticket_id', _ID, nullable=False),
    sa.Column('message_id', _ID, nullable=True),
    sa.Column('attachment_id', _ID, nullable=True),
    sa.Column('question', sa.String(length=20), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('run_after', _TS, nullable=False),
    sa.Column('lease_until', _TS, nullable=True),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('started_at', _TS, nullable=True),
    sa.Column('finished_at', _TS, nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('attachment_id')
    )
    with op.batch_alter_table('transcription_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_transcription_jobs_claim', ['status', 'run_after'], unique=False)
        batch_op.create_index('ix_transcription_jobs_ticket', ['ticket_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transcription_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_transcription_jobs_ticket')
        batch_op.drop_index('ix_transcription_jobs_claim')
    op.drop_table('transcription_jobs')
