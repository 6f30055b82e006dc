"""The shared store: every channel writes here through these models."""
from models.audit import ReadAudit
from models.base import Base
from models.call import Call
from models.callback import CallbackTask
from models.console import AgentPresence, CannedReply
from models.conversation import Conversation, ConversationEvent, Message
from models.customer import Bill, Customer, CustomerPhone, Outage, Payment
from models.incident import Incident, IncidentEvent, IncidentReport, OpinionAlert, OutageArea, WechatBinding
from models.integration import Gov12345Order, InboundNonce, OutboxMessage
from models.privacy import PrivacyRun
from models.staff import Department, Staff, StaffSession
from models.ticket import Notification, Ticket, TicketAttachment, TicketCounter, TicketEvent
from models.verification import AccountLookup, ProofAttempt, ResidentVerification

__all__ = [
    "AgentPresence", "CannedReply",
    "Base", "Bill", "Call", "CallbackTask", "Conversation", "ConversationEvent", "Customer", "CustomerPhone",
    "Department", "Gov12345Order", "InboundNonce", "Incident", "IncidentEvent", "IncidentReport", "Message",
    "Notification", "OpinionAlert", "Outage", "OutageArea", "OutboxMessage", "Payment",
    "PrivacyRun", "ReadAudit",
    "Staff", "StaffSession", "Ticket",
    "TicketAttachment", "TicketCounter", "TicketEvent", "WechatBinding",
    "AccountLookup", "ProofAttempt", "ResidentVerification",
]
