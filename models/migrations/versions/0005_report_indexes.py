"""indexes for the reports (报表), /commitments and /metrics

Every report reads a range of creation (or event) times; without these each one scans its table.

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# name -> (table, columns). The tickets one also carries the columns the reports group and count by,
# so a month or a year of tickets is read from the index alone (SQLite and, after VACUUM, PostgreSQL).
INDEXES = {
    'ix_tickets_report': ('tickets', ['created_at', 'business_type', 'channel', 'department_id', 'category',
                                      'status', 'response_due_at', 'responded_at', 'resolution_due_at',
                                      'resolved_at']),
    'ix_ticket_events_action_at': ('ticket_events', ['action', 'at']),
    'ix_conversation_events_action_at': ('conversation_events', ['action', 'at']),
    'ix_conversations_created_at': ('conversations', ['created_at']),
    'ix_messages_sender_created': ('messages', ['sender_kind', 'created_at']),
}


# Open tickets only (a small share of a large store): overdue counts by department for the
# timeliness report and for every /metrics scrape.
OPEN = "status IN ('new', 'assigned', 'in_progress')"


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, unique=False)
    op.create_index('ix_tickets_open_department_due', 'tickets', ['department_id', 'resolution_due_at'],
                    unique=False, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index('ix_tickets_open_department_due', table_name='tickets')
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
