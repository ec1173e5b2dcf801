"""The service desk after intake: organisations, support groups, roles, audit, SLA state; accounts and forms (issues 12, 14).

Revision ID: 0006
Revises: 0005

New columns are added in place (SQLite's ALTER TABLE ADD COLUMN), never by rebuilding `tickets`, whose
AUTOINCREMENT must survive; their foreign keys are declared on PostgreSQL, where ALTER TABLE can add them.
Operators that existed before roles keep every right they had: they become administrators.
"""

from alembic import op
import sqlalchemy as sa
import ticketing.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_TS = ticketing.models.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _fk(name: str, table: str, column: str, target: str) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.create_foreign_key(name, table, target, [column], ['id'])


def upgrade() -> None:
    op.create_table('organisations',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('domains', sa.JSON(), nullable=False),
    sa.Column('hours', sa.Text(), nullable=False),
    sa.Column('holidays', sa.Text(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('sla', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('support_groups',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('organisation_id', _ID, sa.ForeignKey('organisations.id'), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('group_members',
    sa.Column('group_id', _ID, sa.ForeignKey('support_groups.id', ondelete='CASCADE'), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('group_id', 'username')
    )
    op.create_index('ix_group_members_username', 'group_members', ['username'])
    op.create_table('audit',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('at', _TS, nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_at', 'audit', ['at'])
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_at', _TS, nullable=False),
    sa.Column('wait_until', _TS, nullable=True),
    sa.PrimaryKeyConstraint('key')
    )

    op.add_column('assets', sa.Column('organisation_id', _ID, nullable=True))
    op.add_column('assets', sa.Column('support_groups', sa.JSON(), nullable=False, server_default='{}'))
    op.add_column('users', sa.Column('organisation_id', _ID, nullable=True))
    _fk('fk_assets_organisation', 'assets', 'organisation_id', 'organisations')
    _fk('fk_users_organisation', 'users', 'organisation_id', 'organisations')

    for column in (
        sa.Column('organisation_id', _ID, nullable=True),
        sa.Column('group_id', _ID, nullable=True),
        sa.Column('level_since', _TS, nullable=True),
        sa.Column('responded_at', _TS, nullable=True),
        sa.Column('first_response_at', _TS, nullable=True),
        sa.Column('waiting_for', sa.String(length=10), nullable=True),
        sa.Column('waiting_since', _TS, nullable=True),
        sa.Column('paused_minutes', sa.Float(), nullable=False, server_default='0'),
        sa.Column('sla_next_check', _TS, nullable=True),
        sa.Column('sla_alerts', sa.JSON(), nullable=False, server_default='[]'),
    ):
        op.add_column('tickets', column)
    _fk('fk_tickets_organisation', 'tickets', 'organisation_id', 'organisations')
    _fk('fk_tickets_group', 'tickets', 'group_id', 'support_groups')
    op.create_index('ix_tickets_sla_next_check', 'tickets', ['sla_next_check'])
    # The queue's order (most urgent, newest first) read straight off an index, page after page; the same within
    # one organisation and one group, for their filtered queues.
    order = ['priority', sa.text('created_at DESC'), sa.text('id DESC'), 'status']
    op.create_index('ix_tickets_order', 'tickets', order)
    op.create_index('ix_tickets_organisation', 'tickets', ['organisation_id', *order])
    op.create_index('ix_tickets_group', 'tickets', ['group_id', *order])

    op.add_column('operators', sa.Column('role', sa.String(length=20), nullable=False, server_default='operator'))
    op.execute("UPDATE operators SET role = 'admin'")  # operators made before roles could do everything
    op.add_column('api_tokens', sa.Column('operator', sa.String(length=100), nullable=True))
    op.add_column('api_tokens', sa.Column('scopes', sa.JSON(), nullable=False, server_default='["read", "write"]'))


def downgrade() -> None:
    op.drop_column('api_tokens', 'scopes')
    op.drop_column('api_tokens', 'operator')
    op.drop_column('operators', 'role')
    for name in ('ix_tickets_order', 'ix_tickets_group', 'ix_tickets_organisation', 'ix_tickets_sla_next_check'):
        op.drop_index(name, 'tickets')
    if op.get_bind().dialect.name != 'sqlite':
        for name, table in (('fk_tickets_group', 'tickets'), ('fk_tickets_organisation', 'tickets'),
                            ('fk_users_organisation', 'users'), ('fk_assets_organisation', 'assets')):
            op.drop_constraint(name, table, type_='foreignkey')
    for column in ('sla_alerts', 'sla_next_check', 'paused_minutes', 'waiting_since', 'waiting_for',
                   'first_response_at', 'responded_at', 'level_since', 'group_id', 'organisation_id'):
        op.drop_column('tickets', column)
    op.drop_column('users', 'organisation_id')
    op.drop_column('assets', 'support_groups')
    op.drop_column('assets', 'organisation_id')
    op.drop_table('login_throttle')
    op.drop_index('ix_audit_at', 'audit')
    op.drop_table('audit')
    op.drop_index('ix_group_members_username', 'group_members')
    op.drop_table('group_members')
    op.drop_table('support_groups')
    op.drop_table('organisations')
