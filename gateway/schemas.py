"""Shapes the gateway itself owns: errors, lists, health."""
from __future__ import annotations

from marshmallow import Schema, fields


class FieldProblemSchema(Schema):
    code = fields.String(required=True, metadata={
        "description": "stable: `required`, `null`, `wrong_type`, `unknown_field`, `length`, `too_long`, `range`, "
                       "`one_line`, `one_of`, `email`, `phone_format`, ... (docs/CONTRACTS.md, Field codes); "
                       "`invalid` for a problem without a code of its own"})
    params = fields.Dict(required=True, metadata={
        "description": "the values the message names, e.g. {\"min\": 1, \"max\": 100} for `length`"})


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code"})
    message = fields.String(required=True, metadata={
        "description": "for a person: in the language of Accept-Language (pl, en), else the customer's, else English"})
    field_errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True,
                               data_key="fields",
                               metadata={"description": "per-field messages, in the language of `message`; nested "
                                                        "fields are dotted (postal_address.city)"})
    details = fields.Dict(required=True)
    field_codes = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(FieldProblemSchema)),
                              required=True, metadata={
                                  "description": "the same fields as `fields`, each message as a stable code with "
                                                 "its values, for a client that says it in words of its own"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class HealthSchema(Schema):
    service = fields.String()
    status = fields.String(metadata={"enum": ["ok", "failing"]})
    version = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())
