"""email, suppressions, lead capture and sequences (issue 15)

- email_messages: one per e-mail to one recipient, the tracking record written with its send job;
  email_events: each SendGrid event applied once; email_suppressions: who gets no more mail of a
  group; email_template_choices: a workspace's SendGrid dynamic template for a purpose.
- proposal_templates, lead_messages (a lead's inquiries, replies and notes), email_sequences,
  sequence_steps and sequence_enrolments.
- leads gain company, service type, event date, last inquiry and time zone; workspaces the
  origins allowed to post the lead form and the Inbound Parse token.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:56:22.040663
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import models.base
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('email_messages',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('template', sa.String(length=120), nullable=False),
    sa.Column('to_email', sa.String(length=254), nullable=False),
    sa.Column('to_name', sa.String(length=120), nullable=True),
    sa.Column('subject_type', sa.String(length=16), nullable=True),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('dedupe_key', sa.String(length=160), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('skip_reason', sa.Text(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('send_job_id', sa.Integer(), nullable=True),
    sa.Column('sendgrid_message_id', sa.String(length=80), nullable=True),
    sa.Column('sent_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_open_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_open_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('machine_open_count', sa.Integer(), nullable=False),
    sa.Column('first_click_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_click_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('click_count', sa.Integer(), nullable=False),
    sa.Column('last_event_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_messages_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_messages')),
    sa.UniqueConstraint('workspace_id', 'dedupe_key', name=op.f('uq_email_messages_workspace_id_dedupe_key'))
    )
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.create_index('ix_email_messages_send_job_id', ['send_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_messages_sendgrid_message_id'), ['sendgrid_message_id'], unique=False)
        batch_op.create_index('ix_email_messages_subject', ['workspace_id', 'subject_type', 'subject_id'], unique=False)
        batch_op.create_index('ix_email_messages_workspace_id_created_at', ['workspace_id', 'created_at'], unique=False)

    op.create_table('email_sequences',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('trigger', sa.String(length=24), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_sequences_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_sequences'))
    )
    with op.batch_alter_table('email_sequences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_sequences_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('email_template_choices',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('sendgrid_template_id', sa.String(length=80), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_template_choices_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_template_choices')),
    sa.UniqueConstraint('workspace_id', 'purpose', name=op.f('uq_email_template_choices_workspace_id_purpose'))
    )
    op.create_table('proposal_templates',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('service_type', sa.String(length=60), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_proposal_templates_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proposal_templates'))
    )
    with op.batch_alter_table('proposal_templates', schema=None) as batch_op:
        batch_op.create_index('ix_proposal_templates_workspace_id', ['workspace_id', 'service_type'], unique=False)

    op.create_table('email_events',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('sg_event_id', sa.String(length=120), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=24), nullable=False),
    sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['email_messages.id'], name=op.f('fk_email_events_message_id_email_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_events_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_events')),
    sa.UniqueConstraint('workspace_id', 'sg_event_id', name=op.f('uq_email_events_workspace_id_sg_event_id'))
    )
    with op.batch_alter_table('email_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_events_message_id'), ['message_id'], unique=False)

    op.create_table('email_suppressions',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('purpose_group', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['email_messages.id'], name=op.f('fk_email_suppressions_message_id_email_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_suppressions_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_suppressions')),
    sa.UniqueConstraint('workspace_id', 'email', 'purpose_group', name=op.f('uq_email_suppressions_workspace_id_email_purpose_group'))
    )
    op.create_table('lead_messages',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_messages_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_lead_messages_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_messages'))
    )
    with op.batch_alter_table('lead_messages', schema=None) as batch_op:
        batch_op.create_index('ix_lead_messages_lead_id_at', ['lead_id', 'at'], unique=False)

    op.create_table('sequence_enrolments',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('next_position', sa.Integer(), nullable=False),
    sa.Column('next_due_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stop_reason', sa.String(length=200), nullable=True),
    sa.Column('stopped_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_sequence_enrolments_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sequence_id'], ['email_sequences.id'], name=op.f('fk_sequence_enrolments_sequence_id_email_sequences'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_sequence_enrolments_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequence_enrolments')),
    sa.UniqueConstraint('sequence_id', 'lead_id', name=op.f('uq_sequence_enrolments_sequence_id_lead_id'))
    )
    with op.batch_alter_table('sequence_enrolments', schema=None) as batch_op:
        batch_op.create_index('ix_sequence_enrolments_due', ['status', 'next_due_at'], unique=False)

    op.create_table('sequence_steps',
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('delay_minutes', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('window_start_hour', sa.Integer(), nullable=True),
    sa.Column('window_end_hour', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sequence_id'], ['email_sequences.id'], name=op.f('fk_sequence_steps_sequence_id_email_sequences'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_sequence_steps_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequence_steps')),
    sa.UniqueConstraint('sequence_id', 'position', name=op.f('uq_sequence_steps_sequence_id_position'))
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('company', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('service_type', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('event_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_inquiry_at', models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=True))

    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_form_origins', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('inbound_parse_token', sa.String(length=64), nullable=True))



def downgrade() -> None:
    # Plain DROP COLUMN, SQLite too: a batch rebuild drops and re-creates the table, and with
    # foreign keys on, dropping workspaces or leads deletes every row that cascades from them.
    op.drop_column("workspaces", "inbound_parse_token")
    op.drop_column("workspaces", "lead_form_origins")
    for column in ("time_zone", "last_inquiry_at", "event_date", "service_type", "company"):
        op.drop_column("leads", column)

    op.drop_table('sequence_steps')
    with op.batch_alter_table('sequence_enrolments', schema=None) as batch_op:
        batch_op.drop_index('ix_sequence_enrolments_due')

    op.drop_table('sequence_enrolments')
    with op.batch_alter_table('lead_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_messages_lead_id_at')

    op.drop_table('lead_messages')
    op.drop_table('email_suppressions')
    with op.batch_alter_table('email_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_events_message_id'))

    op.drop_table('email_events')
    with op.batch_alter_table('proposal_templates', schema=None) as batch_op:
        batch_op.drop_index('ix_proposal_templates_workspace_id')

    op.drop_table('proposal_templates')
    op.drop_table('email_template_choices')
    with op.batch_alter_table('email_sequences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_sequences_workspace_id'))

    op.drop_table('email_sequences')
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_email_messages_workspace_id_created_at')
        batch_op.drop_index('ix_email_messages_subject')
        batch_op.drop_index(batch_op.f('ix_email_messages_sendgrid_message_id'))
        batch_op.drop_index('ix_email_messages_send_job_id')

    op.drop_table('email_messages')
