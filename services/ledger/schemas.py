"""What crosses the wire for the ledger (RPC arguments, and the gateway's OpenAPI shapes)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.common.schemas import MESSAGES, MoneyField, StrictSchema, one_line, text


# --- RPC arguments ----------------------------------------------------------------------

class MovementSchema(StrictSchema):
    """The arguments every money-moving RPC shares."""

    account_id = text(64, required=True)
    amount = MoneyField(required=True, error_messages=MESSAGES)
    idempotency_key = text(200, required=True)
    reference = text(200, allow_none=True, load_default=None)
    description = text(500, allow_none=True, load_default=None)


class InvoiceLineSchema(StrictSchema):
    description = text(300, required=True)
    gross = MoneyField(required=True, error_messages=MESSAGES)
    period_from = fields.Date(allow_none=True, load_default=None, error_messages=MESSAGES)
    period_to = fields.Date(allow_none=True, load_default=None, error_messages=MESSAGES)
    quantity = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 10_000),
                              error_messages=MESSAGES)


class PaymentSchema(MovementSchema):
    method = text(40, allow_none=True, load_default=None)


class ChargeSchema(MovementSchema):
    lines = fields.List(fields.Nested(InvoiceLineSchema), allow_none=True, load_default=None,
                        validate=validate.Length(min=1, max=100), error_messages=MESSAGES)


class RefundSchema(MovementSchema):
    charge_id = text(36, required=True)


class AdjustmentSchema(MovementSchema):
    reason = one_line(500, required=True)
    operator = one_line(100, required=True)


class CreditLimitSchema(StrictSchema):
    account_id = text(64, required=True)
    limit = MoneyField(required=True, error_messages=MESSAGES)
    operator = one_line(100, required=True)


class PriceSchema(StrictSchema):
    account_id = text(64, required=True)
    amount = MoneyField(required=True, error_messages=MESSAGES)


# --- the gateway's query and response shapes ---------------------------------------------

class MoneyAmountSchema(Schema):
    """Money as the API writes it (named apart from orders' MoneySchema so OpenAPI keeps both)."""

    amount = fields.String(required=True, metadata={"example": "12.50"})
    currency = fields.String(required=True, metadata={"example": "EUR"})


class BalanceSchema(Schema):
    balance = fields.Nested(MoneyAmountSchema, required=True)


class TransactionSchema(Schema):
    id = fields.String(required=True)
    at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"enum": ["payment", "charge", "refund", "adjustment"]})
    amount = fields.Nested(MoneyAmountSchema, required=True,
                           metadata={"description": "signed: positive adds to the balance"})
    balance_after = fields.Nested(MoneyAmountSchema, required=True)
    reference = fields.String(allow_none=True, metadata={"description": "the order id or the payment id"})
    description = fields.String(required=True)
    invoice_id = fields.String(allow_none=True, metadata={"description": "the invoice or credit note it issued"})
    method = fields.String(allow_none=True, metadata={"description": "a payment's method (payments only)"})
    credit_note_id = fields.String(allow_none=True, metadata={"description": "a refund's credit note (refunds only)"})
    charge_id = fields.String(allow_none=True, metadata={"description": "the charge a refund returns (refunds only)"})


class PartySchema(Schema):
    name = fields.String(required=True)
    address = fields.String(required=True)
    postal_address = fields.Dict(allow_none=True, metadata={"description": "{line1, city, postcode, country}"})
    company_name = fields.String(allow_none=True)
    vat_id = fields.String(allow_none=True)
    country = fields.String(required=True)


class InvoiceLineViewSchema(Schema):
    description = fields.String(required=True)
    period_from = fields.Date(allow_none=True)
    period_to = fields.Date(allow_none=True)
    quantity = fields.Integer(required=True)
    net = fields.Nested(MoneyAmountSchema, required=True)
    vat_rate = fields.String(required=True, metadata={"example": "23.00", "description": "percent"})
    vat = fields.Nested(MoneyAmountSchema, required=True)
    gross = fields.Nested(MoneyAmountSchema, required=True)


class InvoiceSchema(Schema):
    id = fields.String(required=True)
    number = fields.String(required=True, metadata={"example": "2026/000123"})
    kind = fields.String(required=True, metadata={"enum": ["invoice", "credit_note"]})
    issued_at = fields.DateTime(required=True)
    seller = fields.Nested(PartySchema, required=True)
    buyer = fields.Nested(PartySchema, required=True)
    lines = fields.List(fields.Nested(InvoiceLineViewSchema), required=True)
    net = fields.Nested(MoneyAmountSchema, required=True, metadata={"description": "negative on a credit note"})
    vat = fields.Nested(MoneyAmountSchema, required=True)
    gross = fields.Nested(MoneyAmountSchema, required=True)
    currency = fields.String(required=True)
    tax_treatment = fields.String(required=True, metadata={"enum": ["standard", "reverse_charge", "outside_scope"]})
    order_id = fields.String(allow_none=True)
    corrects = fields.String(allow_none=True, metadata={"description": "the invoice a credit note corrects"})
    corrects_number = fields.String(allow_none=True, metadata={
        "example": "2026/000165", "description": "on a credit note, the corrected invoice's number; else null"})
    corrects_issued_at = fields.DateTime(allow_none=True, metadata={
        "description": "on a credit note, when the corrected invoice was issued; else null"})
    sale_date = fields.Date(required=True, metadata={
        "description": "the date of the supply: the day the balance paid for it (services are paid in advance); "
                       "on a credit note, the corrected invoice's"})
    settled_at = fields.DateTime(allow_none=True, metadata={
        "description": "when the balance paid it: at issue, unless the charge took the balance below zero "
                       "(then when it was first back at zero or above); null while unpaid"})


class PaymentMethodSchema(Schema):
    id = fields.String(required=True, metadata={"example": "card"})
    name = fields.String(required=True)
    available = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, metadata={
        "description": "why it cannot be used now, e.g. \"blocked until your company data are verified\""})
    reason_code = fields.String(allow_none=True, metadata={"enum": ["payments_blocked", "postal_address_required"]})
