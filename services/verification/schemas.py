"""What crosses the wire for the verification service (shared with the gateway's OpenAPI)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.common.schemas import MESSAGES, StrictSchema, TrimmedString
from services.verification.domain import CHANNELS, OPERATIONS, PURPOSES


def _one_of(choices) -> validate.OneOf:
    return validate.OneOf(choices, error=f"must be one of {', '.join(choices)}")


class StartVerificationSchema(StrictSchema):
    """``POST /api/v1/verifications``: the number is the profile's, so only how and what for."""

    channel = fields.String(required=True, validate=_one_of(CHANNELS), error_messages=MESSAGES,
                            metadata={"enum": list(CHANNELS),
                                      "description": "flash_call: type the last 4 digits of the number that "
                                                     "rang; voice: a robot speaks 4 digits; sms: a text with them"})
    purpose = fields.String(required=True, validate=_one_of(PURPOSES), error_messages=MESSAGES,
                            metadata={"enum": list(PURPOSES),
                                      "description": "phone: confirms the profile's number; operation: the "
                                                     "verification id becomes the proof for one sensitive operation"})
    operation = fields.String(load_default=None, allow_none=True, validate=_one_of(OPERATIONS),
                              error_messages=MESSAGES,
                              metadata={"enum": list(OPERATIONS),
                                        "description": "optional, purpose operation only: the one operation "
                                                       "this proof may confirm (any one when absent)"})


class CheckVerificationSchema(StrictSchema):
    # The pattern is published in the OpenAPI document, so it is one that Python and JSON Schema
    # (ECMA-262) read alike: ASCII digits, "$" (the value is trimmed, so no newline can end it).
    code = TrimmedString(required=True, error_messages=MESSAGES,
                         validate=validate.Regexp(r"^[0-9]{4}$", error="enter the 4 digits"),
                         metadata={"description": "the 4 digits: a flash call's last caller-id digits, the "
                                                  "spoken code, or the code in the SMS"})


class VerificationSchema(Schema):
    """A started verification (the 201 body)."""

    id = fields.String(required=True)
    channel = fields.String(required=True, metadata={"enum": list(CHANNELS)})
    purpose = fields.String(required=True, metadata={"enum": list(PURPOSES)})
    operation = fields.String(allow_none=True, metadata={"enum": list(OPERATIONS)})
    phone = fields.String(required=True, metadata={"description": "the number called, E.164"})
    gateway = fields.String(required=True, metadata={"enum": ["primary", "fallback"],
                                                     "description": "the telephony gateway that served it"})
    status = fields.String(required=True, metadata={"enum": ["sent", "verified"]})
    attempts_left = fields.Integer(required=True)
    expires_at = fields.String(required=True, metadata={"format": "date-time"})


class CheckResultSchema(Schema):
    """A verification confirmed by its code (the 200 body of a check)."""

    id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["verified"]})
    channel = fields.String(required=True, metadata={"enum": list(CHANNELS)})
    purpose = fields.String(required=True, metadata={"enum": list(PURPOSES)})
    operation = fields.String(allow_none=True, metadata={"enum": list(OPERATIONS)})
    verified_at = fields.String(required=True, metadata={"format": "date-time"})
