"""Shapes the gateway itself owns: errors, lists, health."""
from __future__ import annotations

from marshmallow import Schema, fields


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code"})
    message = fields.String(required=True)
    field_errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True,
                               data_key="fields",
                               metadata={"description": "per-field messages; nested fields are dotted (postal_address.city)"})
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class HealthSchema(Schema):
    service = fields.String()
    status = fields.String(metadata={"enum": ["ok", "failing"]})
    version = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())
