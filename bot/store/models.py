"""The channel tables. Schema changes go through Alembic (bot/store/migrations)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# Inbound statuses
QUEUED = "queued"          # stored and enqueued, not yet decided
PROCESSING = "processing"  # a worker claimed it
DONE = "done"              # decided; its replies are in the outbox

# Outbox statuses
PENDING = "pending"    # not yet sent (or a retryable failure, due again at next_attempt_at)
SENDING = "sending"    # a send is in flight; if a crash leaves it here it becomes UNKNOWN
SENT = "sent"
FAILED = "failed"      # the platform refused it for good, or retries ran out
UNKNOWN = "unknown"    # may or may not have reached the platform: never sent again

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("last_inbound_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("channel", "chat_id", name="uq_conversations_channel_chat"),
)

inbound = Table(
    "inbound",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("platform_id", String(128), nullable=False),
    Column("conversation_id", Integer, ForeignKey("conversations.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("detail", String(32), nullable=True),
    Column("text", Text, nullable=True),  # emptied by retention
    Column("reply_to", String(64), nullable=True),
    Column("callback_id", String(128), nullable=True),
    Column("is_group", Boolean, nullable=False, default=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("status", String(16), nullable=False, default=QUEUED),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("route", String(16), nullable=True),
    Column("intent", String(64), nullable=True),
    Column("confidence", Float, nullable=True),
    Column("category", String(32), nullable=True),
    Column("hoax_id", String(64), nullable=True),
    UniqueConstraint("channel", "platform_id", name="uq_inbound_channel_platform_id"),
    Index("ix_inbound_conversation_status", "conversation_id", "status", "id"),
    Index("ix_inbound_status_received", "status", "received_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    # The message this row answers; empty for a reply an admin wrote (``author``).
    Column("inbound_id", Integer, ForeignKey("inbound.id"), nullable=True),
    Column("seq", Integer, nullable=False),
    Column("conversation_id", Integer, ForeignKey("conversations.id"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("method", String(32), nullable=False),
    Column("payload", Text, nullable=True),  # JSON; emptied by retention
    Column("status", String(16), nullable=False, default=PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("platform_message_id", String(128), nullable=True),
    Column("error", String(200), nullable=True),
    Column("delivery_status", String(16), nullable=True),
    Column("delivery_at", DateTime(timezone=True), nullable=True),
    Column("author", String(64), nullable=True),  # the admin who wrote it; empty: Garda
    Column("ticket_id", Integer, nullable=True),   # the ticket an admin reply belongs to
    # One reply per inbound message: a replayed or re-decided message cannot add another.
    UniqueConstraint("inbound_id", "seq", name="uq_outbox_inbound_seq"),
    Index("ix_outbox_conversation_status", "conversation_id", "status", "id"),
    Index("ix_outbox_platform_message_id", "platform_message_id"),
)

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("platform_message_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=True),
    Column("error", String(200), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Index("ix_delivery_events_platform_message_id", "platform_message_id"),
)

# Matches per hoax per day (in the institution's time zone): the trend signal behind
# `garda hoax stats`. Counts only, no message content, so retention leaves it alone.
hoax_daily = Table(
    "hoax_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("hoax_id", String(64), primary_key=True),
    Column("matches", Integer, nullable=False, default=0),
)

# Ticket statuses (the admin queue). OPEN and CLAIMED are "active": a conversation has at
# most one active ticket (tickets are opened only by the worker holding the
# conversation's lock, which first looks for an active one).
OPEN = "open"
CLAIMED = "claimed"
RESOLVED = "resolved"
HANDED_BACK = "handed_back"
ACTIVE = (OPEN, CLAIMED)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversations.id"), nullable=False),
    Column("inbound_id", Integer, ForeignKey("inbound.id"), nullable=True),  # what opened it
    Column("category", String(32), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", String(16), nullable=False, default=OPEN),
    Column("assignee", String(64), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("claim_by", DateTime(timezone=True), nullable=False),  # time-to-claim deadline
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Index("ix_tickets_queue", "status", "priority", "claim_by"),
    Index("ix_tickets_conversation_status", "conversation_id", "status"),
)

# Append-only: who did what to a ticket, and when. Nothing updates or deletes a row.
ticket_events = Table(
    "ticket_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("actor", String(64), nullable=False),  # an admin's user name, or "garda"
    Column("action", String(32), nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_ticket_events_ticket", "ticket_id", "id"),
)

# A ticket's posts in the admins' Telegram group (bot/admin/telegram_group.py), one row per
# (ticket, chat, kind, priority): the row is reserved before the post is sent, so that of
# any number of processes (or restarts) only one posts it. kind: "alert" (the first post)
# or "raised" (the ticket became more urgent); message_id stays empty while it is sent.
ticket_posts = Table(
    "ticket_posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("chat_id", String(32), nullable=False),
    Column("message_id", Integer, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    UniqueConstraint("ticket_id", "chat_id", "kind", "priority", name="uq_ticket_posts_post"),
    Index("ix_ticket_posts_message", "chat_id", "message_id"),
)

# The admins' web console (bot/admin): its users, their server-side sessions, and failed
# logins (for the lockout). No citizen data.
ADMIN_ROLES = ("trainer", "agent", "supervisor", "admin")

admin_users = Table(
    "admin_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("password_hash", String(255), nullable=False),  # scrypt, with its parameters
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("disabled", Boolean, nullable=False, default=False),
    UniqueConstraint("name", name="uq_admin_users_name"),
)

admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 (hex) of the cookie's token
    Column("user_id", Integer, ForeignKey("admin_users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_admin_sessions_user", "user_id"),
)

admin_login_failures = Table(
    "admin_login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),  # the name tried (it may not exist)
    Column("at", DateTime(timezone=True), nullable=False, default=utcnow),
    Index("ix_admin_login_failures_name_at", "name", "at"),
)

# The trainers' review inbox (bot/trainer/inbox.py fills it in the decision's transaction;
# docs/training.md). ``text`` is masked (bot/privacy.py) before it is stored and emptied by
# retention; ``inbound_id`` has no foreign key because retention deletes inbound rows.
REVIEW_SOURCES = ("low_margin", "fallback", "clarification", "relabel", "spot_check")
REVIEW_STATUSES = ("open", "accepted", "relabelled", "new_topic", "discarded")

review_items = Table(
    "review_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("source", String(16), nullable=False),
    Column("inbound_id", Integer, nullable=True),
    Column("text", Text, nullable=True),  # masked; emptied by retention
    Column("predicted_intent", String(64), nullable=True),
    Column("confidence", Float, nullable=True),
    # The implicit label: the clarification button the citizen chose, or an admin's re-label.
    Column("suggested_intent", String(64), nullable=True),
    Column("cluster_key", String(64), nullable=False),  # near-duplicates share it
    Column("status", String(16), nullable=False, default="open"),
    Column("label", String(64), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Index("ix_review_items_status_cluster", "status", "cluster_key"),
    Index("ix_review_items_cluster_key", "cluster_key"),
    Index("ix_review_items_created_at", "created_at"),
    Index("ix_review_items_inbound_id", "inbound_id"),
)

# Versions of approved content (bot/content_versions.py; docs/content.md): an answer
# (kind "answer", key: the domain response's name) or a hoax clarification (kind "hoax",
# key: the entry's id). Version 0 is the file's text and has no row. A version is served
# only once someone other than its author approved it; rows are never deleted.
CONTENT_KINDS = ("answer", "hoax")
CONTENT_STATUSES = ("proposed", "approved", "rejected", "withdrawn")

content_versions = Table(
    "content_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(100), nullable=False),
    Column("version", Integer, nullable=False),  # 1..n per (kind, key)
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("proposed_by", String(64), nullable=False),
    Column("proposed_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("reason", Text, nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("based_on", Integer, nullable=True),  # the version it was written against
    # An immediate rollback's copy of version N: it is served with N's approval record.
    Column("restores", Integer, nullable=True),
    UniqueConstraint("kind", "key", "version", name="uq_content_versions_version"),
    Index("ix_content_versions_status", "status", "kind", "key"),
)

# Append-only: who proposed, approved, rejected, withdrew or rolled back what, and when.
content_audit = Table(
    "content_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("actor", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_content_audit_key", "kind", "key", "id"),
)
