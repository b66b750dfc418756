"""Prometheus metrics. Labels are channel names, routes and reasons: never a chat id or text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = Counter(
    "garda_messages_in_total", "Citizen messages stored for answering", ["channel"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "garda_duplicates_total", "Deliveries of a message already stored (platform retries)",
    ["channel"], registry=REGISTRY,
)
REJECTED = Counter(
    "garda_webhooks_rejected_total", "Webhook requests refused, by reason",
    ["channel", "reason"], registry=REGISTRY,
)
IGNORED = Counter(
    "garda_updates_ignored_total", "Well-formed updates Garda does not answer (group chatter)",
    ["channel"], registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    "garda_messages_out_total", "Platform calls made for replies, by result",
    ["channel", "result"], registry=REGISTRY,
)
DECISIONS = Counter(
    "garda_decisions_total", "Decisions taken, by route", ["channel", "route"], registry=REGISTRY,
)
ESCALATIONS = Counter(
    "garda_escalations_total", "Messages escalated to people, by category", ["category"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "garda_errors_total", "Errors by stage (store, queue, brain, send)", ["stage"],
    registry=REGISTRY,
)
DELIVERY = Counter(
    "garda_delivery_reports_total", "Delivery reports received (WhatsApp statuses)",
    ["channel", "status"], registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "garda_webhook_ack_seconds", "Time from webhook request to acknowledgement", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=REGISTRY,
)
REPLY_SECONDS = Histogram(
    "garda_reply_seconds", "Time from a message being stored to its reply being sent",
    ["channel"], buckets=(0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
BRAIN_SECONDS = Histogram(
    "garda_brain_seconds", "Time to decide one message", buckets=(
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1), registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "garda_queue_depth", "Messages stored but not yet decided", registry=REGISTRY,
)
