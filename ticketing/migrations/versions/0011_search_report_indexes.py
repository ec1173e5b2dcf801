"""Indexes for search and reports at 100,000 tickets (issue 13 §3, §5).

- `kb_terms (kind, term, ref, tf)` replaces `(kind, term)`: a word's postings are read off the index alone, in
  ticket order, by search and by the suggestions' BM25 (which also needs `tf`);
- `tickets (organisation_id, id)`, `(group_id, id)`, `(asset_id, id)` (the last replaces `(asset_id)`): a search
  on one of them walks its tickets newest first off the index and stops at the page;
- `tickets (created_at)`: a date range (search, and every report table) reads only its days;
- `messages (received_at, direction, channel)`: contacts per channel per day counted off the index;
- `events (kind, ticket_id, at)`: the last resolution of each ticket (report times and SLA) without the table.

Revision ID: 0011
Revises: 0010
"""

from alembic import op
import sqlalchemy as sa  # noqa: F401


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

NEW = (
    ('ix_kb_terms_postings', 'kb_terms', ['kind', 'term', 'ref', 'tf']),
    ('ix_tickets_organisation_id', 'tickets', ['organisation_id', 'id']),
    ('ix_tickets_group_id', 'tickets', ['group_id', 'id']),
    ('ix_tickets_created', 'tickets', ['created_at']),
    ('ix_messages_received', 'messages', ['received_at', 'direction', 'channel']),
    ('ix_events_kind', 'events', ['kind', 'ticket_id', 'at']),
)


def upgrade() -> None:
    op.drop_index('ix_kb_terms_term', table_name='kb_terms')
    op.drop_index('ix_tickets_asset', table_name='tickets')
    op.create_index('ix_tickets_asset', 'tickets', ['asset_id', 'id'], unique=False)
    for name, table, columns in NEW:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(NEW):
        op.drop_index(name, table_name=table)
    op.drop_index('ix_tickets_asset', table_name='tickets')
    op.create_index('ix_tickets_asset', 'tickets', ['asset_id'], unique=False)
    op.create_index('ix_kb_terms_term', 'kb_terms', ['kind', 'term'], unique=False)
