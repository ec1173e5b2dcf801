"""Knowledge: articles, suggestions, search, linked incidents (issue 13).

Revision ID: 0009
Revises: 0008
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import ticketing.models  # noqa: F401


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Articles and their versions (ticketing/knowledge.py), the full-text index of articles and resolved
    # tickets (ticketing/kbindex.py), each ticket's suggestions and the worker's cursor (ticketing/suggestions.py).
    op.create_table('kb_cursor',
    sa.Column('name', sa.String(length=30), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('kb_docs',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('ref', sa.BigInteger(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=True),
    sa.Column('length', sa.Integer(), nullable=False),
    sa.Column('assets', sa.JSON(), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'ref')
    )
    op.create_table('kb_terms',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('term', sa.String(length=60), nullable=False),
    sa.Column('ref', sa.BigInteger(), nullable=False),
    sa.Column('tf', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_kb_terms_doc', 'kb_terms', ['kind', 'ref'], unique=False)
    op.create_index('ix_kb_terms_term', 'kb_terms', ['kind', 'term'], unique=False)
    op.create_table('kb_articles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('symptom', sa.Text(), nullable=False),
    sa.Column('solution', sa.Text(), nullable=False),
    sa.Column('asset_tags', sa.JSON(), nullable=False),
    sa.Column('asset_kinds', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source_ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('ticket_suggestions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('computed_at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ticket_suggestions_ticket', 'ticket_suggestions', ['ticket_id', 'rank'], unique=False)
    op.create_table('kb_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('article_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('at', ticketing.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('symptom', sa.Text(), nullable=False),
    sa.Column('solution', sa.Text(), nullable=False),
    sa.Column('asset_tags', sa.JSON(), nullable=False),
    sa.Column('asset_kinds', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('article_id', 'version', name='uq_kb_versions_article_version')
    )


def downgrade() -> None:
    op.drop_table('kb_versions')
    op.drop_index('ix_ticket_suggestions_ticket', table_name='ticket_suggestions')
    op.drop_table('ticket_suggestions')
    op.drop_table('kb_articles')
    op.drop_index('ix_kb_terms_term', table_name='kb_terms')
    op.drop_index('ix_kb_terms_doc', table_name='kb_terms')
    op.drop_table('kb_terms')
    op.drop_table('kb_docs')
    op.drop_table('kb_cursor')
