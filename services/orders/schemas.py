"""What crosses the wire for the orders service (shared with the gateway's OpenAPI)."""
from __future__ import annotations

from marshmallow import ValidationError as FieldError
from marshmallow import fields, validate

from services.common.schemas import MESSAGES, StrictBoolean, StrictInteger, StrictSchema, one_line, text

KINDS = ("dedicated", "vps")
CANCEL_WHEN = ("now", "end_of_period")
# The customer's order form: names and values are checked against the plan, but the size of
# what reaches the plan's rules is bounded here.
MAX_FORM_FIELDS = 20


class FormFields(fields.Dict):
    """``fields{...}``: an object of strings; the plan decides which names and values are valid."""

    def __init__(self, **kwargs):
        super().__init__(keys=fields.String(validate=validate.Length(min=1, max=64)),
                         values=fields.Raw(), error_messages=MESSAGES, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if len(value) > MAX_FORM_FIELDS:
            raise FieldError(f"at most {MAX_FORM_FIELDS} fields")
        return super()._deserialize(value, attr, data, **kwargs)


class NewOrderSchema(StrictSchema):
    plan_id = text(48, required=True)
    period_months = StrictInteger(required=True, validate=validate.Range(min=1, max=120, error="must be 1 to 120"))
    fields = FormFields(required=True)
    auto_renew = StrictBoolean(load_default=False)


class RenewSchema(StrictSchema):
    period_months = StrictInteger(required=True, validate=validate.Range(min=1, max=120, error="must be 1 to 120"))


class OrderChangeSchema(StrictSchema):
    """``PATCH /api/v1/orders/{id}``: what a customer may change on an order after placing it."""

    auto_renew = StrictBoolean(required=True, metadata={
        "description": "renew from the balance before paid-until (the lifecycle timer's auto-renewal)"})


class ChangePlanSchema(StrictSchema):
    plan_id = text(48, required=True)


class CancelSchema(StrictSchema):
    when = fields.String(required=True, error_messages=MESSAGES,
                         validate=validate.OneOf(CANCEL_WHEN, error="must be now or end_of_period"))
    reason = one_line(500, allow_none=True, load_default=None)
    verification_id = text(64, allow_none=True, load_default=None, metadata={
        "description": "a phone verification of purpose operation; required when the customer "
                       "confirms sensitive operations by call (422 verification_required)"})


# --- query strings (values arrive as text)

class PlansQuerySchema(StrictSchema):
    kind = fields.String(load_default=None, error_messages=MESSAGES,
                         validate=validate.OneOf(KINDS, error="must be dedicated or vps"))


class OrderQuoteQuerySchema(StrictSchema):
    plan_id = text(48, required=True)
    period_months = fields.Integer(required=True, error_messages=MESSAGES,
                                   validate=validate.Range(min=1, max=120, error="must be 1 to 120"),
                                   metadata={"description": "one of the plan's periods"})


class RenewQuoteQuerySchema(StrictSchema):
    period_months = fields.Integer(required=True, error_messages=MESSAGES,
                                   validate=validate.Range(min=1, max=120, error="must be 1 to 120"),
                                   metadata={"description": "one of the plan's periods"})


class ChangeQuoteQuerySchema(StrictSchema):
    plan_id = text(48, required=True)


class CancelQuoteQuerySchema(StrictSchema):
    when = fields.String(load_default="now", error_messages=MESSAGES,
                         validate=validate.OneOf(CANCEL_WHEN, error="must be now or end_of_period"))


# --- responses (documentation for the OpenAPI document)

class MoneySchema(StrictSchema):
    amount = fields.String(metadata={"example": "12.50"})
    currency = fields.String(metadata={"example": "EUR"})


class PlanPriceSchema(StrictSchema):
    period_months = fields.Integer()
    price = fields.Nested(MoneySchema, metadata={"description": "the whole period, VAT included"})


class RequiredFieldSchema(StrictSchema):
    name = fields.String()
    type = fields.String(validate=validate.OneOf(("string", "choice")))
    options = fields.List(fields.Raw(metadata={"oneOf": [{"type": "string"}, {
        "type": "object", "required": ["value", "available"],
        "properties": {"value": {"type": "string", "example": "WAW1"}, "available": {"type": "boolean"}}}]}),
        metadata={"description": "a choice's values: strings; for the datacenter (a choice of where the server "
                                 "stands) objects {value, available}, so a form offers no sold-out choice"})
    pattern = fields.String()


class PlanSchema(StrictSchema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(KINDS))
    name = fields.String()
    description = fields.String()
    prices = fields.List(fields.Nested(PlanPriceSchema))
    required_fields = fields.List(fields.Nested(RequiredFieldSchema))
    available = fields.Boolean(metadata={"description": "whether any of the plan's datacenters has stock now"})


class PlanSummarySchema(StrictSchema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()


class OrderEventSchema(StrictSchema):
    at = fields.String()
    kind = fields.String(metadata={"enum": ["created", "paid", "renewed", "plan_changed", "cancelled",
                                            "refunded", "overdue", "suspended", "closed", "auto_renew_changed"]})
    details = fields.Dict()


class OrderSchema(StrictSchema):
    id = fields.String()
    number = fields.String(metadata={"description": "the order's short number, unique in the system",
                                     "example": "ORD-000042"})
    hostname = fields.String(allow_none=True, metadata={
        "description": "the server's host name from the order form, or null when the plan's form has none"})
    plan = fields.Nested(PlanSummarySchema)
    period_months = fields.Integer()
    ip_address = fields.String(allow_none=True)
    paid_until = fields.Date(allow_none=True)
    days_left = fields.Integer()
    status = fields.String(metadata={"enum": ["pending_payment", "active", "overdue", "suspended",
                                              "cancelled", "closed"]})
    cost = fields.Nested(MoneySchema)
    auto_renew = fields.Boolean()
    cancel_at = fields.Date(allow_none=True)
    form = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields",
                       metadata={"description": "what the customer filled in"})
    actions = fields.List(fields.String(validate=validate.OneOf(("renew", "change_plan", "cancel"))))
    created_at = fields.String()


class OrderDetailSchema(OrderSchema):
    events = fields.List(fields.Nested(OrderEventSchema), metadata={"description": "oldest first"})


class QuoteLineSchema(StrictSchema):
    description = fields.String()
    period_from = fields.Date()
    period_to = fields.Date()
    days = fields.Integer()
    old_daily_price = fields.String(metadata={"description": "what was paid per unused day, 4 decimal places"})
    new_daily_price = fields.String(metadata={"description": "the new plan's price per day of the period, "
                                                             "4 decimal places"})
    amount = fields.Nested(MoneySchema, metadata={"description": "positive: charged; negative: credited"})


class RenewQuoteLineSchema(StrictSchema):
    description = fields.String()
    period_from = fields.Date()
    period_to = fields.Date(metadata={"description": "the last day the renewal pays for"})
    months = fields.Integer()
    amount = fields.Nested(MoneySchema)


class RenewQuoteSchema(StrictSchema):
    charge = fields.Nested(MoneySchema, metadata={"description": "exactly what renewing now takes from the balance"})
    paid_until = fields.Date(metadata={"description": "the order's paid-until after the renewal"})
    period_months = fields.Integer()
    lines = fields.List(fields.Nested(RenewQuoteLineSchema))


class OrderQuoteSchema(RenewQuoteSchema):
    """A new order's quote: the same fields, ``paid_until`` as if the balance paid it today."""


class ChangeQuoteSchema(StrictSchema):
    charge = fields.Nested(MoneySchema)
    credit = fields.Nested(MoneySchema)
    lines = fields.List(fields.Nested(QuoteLineSchema))


class PlanChangeResultSchema(StrictSchema):
    order = fields.Nested(OrderSchema)
    charge = fields.Nested(MoneySchema)
    credit = fields.Nested(MoneySchema)


class CancelQuoteSchema(StrictSchema):
    refund = fields.Nested(MoneySchema)


class CancellationResultSchema(StrictSchema):
    order = fields.Nested(OrderSchema)
    refund = fields.Nested(MoneySchema)
