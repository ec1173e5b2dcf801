"""Linked incidents and merged tickets (issue 13 §4); rejections readmitted as tickets (§6).

Revision ID: 0012
Revises: 0011
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import ticketing.models  # noqa: F401


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ticketing/links.py: each ticket's one link, to its parent incident or to the ticket it was merged into.
    op.create_table('ticket_links',
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.ForeignKeyConstraint(['target_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    op.create_index('ix_ticket_links_target', 'ticket_links', ['target_id', 'kind'], unique=False)
    # ticketing/readmit.py: which ticket a rejected contact became when an operator readmitted it.
    op.create_table('rejection_readmits',
    sa.Column('rejection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['rejection_id'], ['rejections.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('rejection_id')
    )


def downgrade() -> None:
    op.drop_table('rejection_readmits')
    op.drop_index('ix_ticket_links_target', table_name='ticket_links')
    op.drop_table('ticket_links')
