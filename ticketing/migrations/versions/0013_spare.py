"""The open queue's partial indexes (issue 14 §8): the desk counts and pages the open tickets (a third of them
at 100,000) off small indexes that hold only those, instead of scanning the table (PostgreSQL counted the open
queue with a sequential scan: 30-80 ms a page under load).

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

OPEN = "status IN ('in_progress', 'new', 'waiting')"  # ticketing/lifecycle.py's OPEN_STATUSES, as in models.py
ORDER = [sa.text('priority'), sa.text('created_at DESC'), sa.text('id DESC')]
INDEXES = (
    ('ix_tickets_open', []),
    ('ix_tickets_open_organisation', [sa.text('organisation_id')]),
    ('ix_tickets_open_group', [sa.text('group_id')]),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite's planner cannot use a partial index with bound statuses: nothing to gain there
    for name, lead in INDEXES:
        op.create_index(name, 'tickets', [*lead, *ORDER], unique=False, postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, _ in INDEXES:
        op.drop_index(name, table_name='tickets')
