"""What crosses the notifier's wire: the operator's newsletter, the support desk's mail, the sent-mail list."""
from __future__ import annotations

from marshmallow import fields, post_load, validate

from services.common.schemas import MESSAGES, StrictInteger, StrictSchema, one_line
from services.common.schemas import text as words  # the newsletter has a field named text

MAX_PAGE = 100


class NewsletterSchema(StrictSchema):
    subject = one_line(200, required=True)  # a mail's Subject line
    text = words(50_000, required=True)
    idempotency_key = words(200, allow_none=True)


class SupportReplySchema(StrictSchema):
    """``notify(..., "support_reply", data)``: the support desk answered a customer's request (N3b)."""

    ticket_id = words(64, required=True)
    ticket_subject = one_line(200, required=True)
    reply = words(20_000, required=True)


class AbuseReportSchema(StrictSchema):
    """``notify(..., "abuse_report", data)``: a complaint about one of the customer's addresses (N3c)."""

    report_id = words(64, required=True)
    ip_address = fields.IP(required=True, error_messages={**MESSAGES, "invalid_ip": "must be an IP address"})
    summary = words(5_000, required=True)
    respond_by = fields.Date(required=True, error_messages={**MESSAGES, "invalid": "must be a date, YYYY-MM-DD"})
    order_id = words(64, allow_none=True, load_default=None)

    @post_load
    def as_event_fields(self, data, **kwargs):
        """Text, as in the events the message templates are written for."""
        return {**data, "ip_address": str(data["ip_address"]), "respond_by": data["respond_by"].isoformat()}


REQUESTED_MAIL = {"support_reply": SupportReplySchema, "abuse_report": AbuseReportSchema}
"""The kinds of mail other Introserv systems ask for over RPC, each with the data it needs."""


class NotifySchema(StrictSchema):
    """``notify``'s arguments; ``data`` is checked by the kind's own schema."""

    account_id = words(64, required=True)
    kind = fields.String(required=True, error_messages=MESSAGES,
                         validate=validate.OneOf(sorted(REQUESTED_MAIL), error="must be one of: {choices}"))
    data = fields.Dict(required=True, error_messages=MESSAGES)
    idempotency_key = words(200, required=True)


class SentPageSchema(StrictSchema):
    """``list_sent``'s arguments over RPC."""

    account_id = words(64, required=True)
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = words(200, allow_none=True, load_default=None)


class SentQuerySchema(StrictSchema):
    """``?limit=&cursor=`` of ``GET /api/v1/notifications/sent`` (query strings are text)."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE),
                           error_messages=MESSAGES, metadata={"description": f"1 to {MAX_PAGE}, default 50"})
    cursor = words(200, load_default=None, metadata={"description": "next_cursor of the previous page"})


class SentMessageSchema(StrictSchema):
    """One message the customer was sent (or is being sent)."""

    id = fields.String(required=True)
    at = fields.String(required=True, metadata={"description": "when the message was written, ISO 8601"})
    kind = fields.String(required=True, metadata={"description": "e.g. order_created, password_changed"})
    to = fields.String(required=True, metadata={"description": "the address it went to"})
    subject = fields.String(required=True)
    state = fields.String(required=True, metadata={
        "enum": ["pending", "sent", "failed", "dead"],
        "description": "pending: waiting or being retried; sent: the mail relay took it; "
                       "failed: refused for good; dead: every retry failed"})
    sent_at = fields.String(allow_none=True, metadata={"description": "when the relay took it, or null"})
