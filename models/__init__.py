"""The SQLAlchemy models shared by the console, the sidecar and the scheduler.

Importing this package registers every table on ``Base.metadata`` (Alembic relies on it).
"""

from models.accounts import LoginThrottle, Membership, Operator, OperatorSession, Workspace
from models.base import Base, utcnow
from models.crm import Client, Contract, Event, Lead, Payment, Proposal
from models.email import (
    EmailEvent,
    EmailMessage,
    EmailSequence,
    EmailStatus,
    EmailSuppression,
    EmailTemplateChoice,
    EnrolmentStatus,
    LeadMessage,
    ProposalTemplate,
    SequenceEnrolment,
    SequenceStep,
)
from models.engagement import EngagementEvent
from models.enums import (
    AlertPriority,
    AlertState,
    ContractStatus,
    InboundStatus,
    IntegrationStatus,
    InvoiceStatus,
    JobStatus,
    PaymentKind,
    PaymentStatus,
    Plan,
    Role,
    ShowStatus,
)
from models.inbox import InboundEvent
from models.integrations import Integration, OAuthNonce
from models.invoices import CheckoutLinkSend, Invoice, InvoiceDiscrepancy
from models.monitoring import (
    BUCKET_COLUMNS,
    LATENCY_BUCKETS_MS,
    OUTCOME_COLUMNS,
    Alert,
    AlertEvent,
    AuditLog,
    CallHour,
    CallMinute,
    IntegrationLog,
    ProviderCallLatest,
)
from models.outbox import JobKindPause, OutboxJob, ProviderCircuit
from models.shows import Buyer, Claim, Show, ShowItem
from models.system import SchedulerHeartbeat

__all__ = [
    "BUCKET_COLUMNS",
    "LATENCY_BUCKETS_MS",
    "OUTCOME_COLUMNS",
    "Alert",
    "AlertEvent",
    "AlertPriority",
    "AlertState",
    "AuditLog",
    "Base",
    "Buyer",
    "CallHour",
    "CallMinute",
    "CheckoutLinkSend",
    "Claim",
    "Client",
    "Contract",
    "ContractStatus",
    "EmailEvent",
    "EmailMessage",
    "EmailSequence",
    "EmailStatus",
    "EmailSuppression",
    "EmailTemplateChoice",
    "EngagementEvent",
    "EnrolmentStatus",
    "Event",
    "InboundEvent",
    "InboundStatus",
    "Integration",
    "IntegrationLog",
    "IntegrationStatus",
    "Invoice",
    "InvoiceDiscrepancy",
    "InvoiceStatus",
    "JobKindPause",
    "JobStatus",
    "Lead",
    "LeadMessage",
    "LoginThrottle",
    "Membership",
    "OAuthNonce",
    "Operator",
    "OperatorSession",
    "OutboxJob",
    "Payment",
    "PaymentKind",
    "PaymentStatus",
    "Plan",
    "Proposal",
    "ProposalTemplate",
    "ProviderCallLatest",
    "ProviderCircuit",
    "Role",
    "SchedulerHeartbeat",
    "SequenceEnrolment",
    "SequenceStep",
    "Show",
    "ShowItem",
    "ShowStatus",
    "Workspace",
    "utcnow",
]
