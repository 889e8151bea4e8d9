"""What crosses the notifier's wire: the operator's newsletter, the sent-mail list and its page."""
from __future__ import annotations

from marshmallow import fields, validate

from services.common.schemas import MESSAGES, StrictInteger, StrictSchema
from services.common.schemas import text as words  # the newsletter has a field named text

MAX_PAGE = 100


class NewsletterSchema(StrictSchema):
    subject = words(200, required=True)
    text = words(50_000, required=True)
    idempotency_key = words(200, allow_none=True)


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
