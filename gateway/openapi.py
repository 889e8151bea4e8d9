"""The OpenAPI 3 document, generated from the route declarations and marshmallow schemas."""
from __future__ import annotations

from functools import cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter

from gateway.http import ROUTES, to_openapi_path
from gateway.schemas import ErrorSchema
from services.common.health import VERSION

STATUS_TEXT = {
    400: "malformed_json or validation_error (wrong types, missing, unknown or empty fields)",
    401: "unauthenticated: no, bad or ended token",
    403: "not allowed",
    404: "not_found (also for another customer's resource)",
    409: "conflict with the current state",
    410: "gone: expired or used",
    411: "length_required: a transfer coding other than plain chunked",
    413: "payload_too_large: body over 1 MB",
    414: "uri_too_long: the request line (method, path and query) over 8 KB",
    431: "headers_too_large: a header line over 8 KB, or the headers over 64 KB",
    415: "unsupported_media_type: a body not sent as application/json",
    422: "valid JSON that breaks a business rule",
    429: "rate limited; see the Retry-After header",
    503: "a service behind the gateway is down or timed out",
}

CONVENTIONS = """\
JSON in and out, UTF-8. Times are ISO 8601 with a zone; dates YYYY-MM-DD; ids are strings.
Money is {"amount": "12.50", "currency": "EUR"}: a decimal string with two places, never a
float (a float is 400 validation_error). Errors always have the shape
{"error": {"code", "message", "fields", "details", "field_codes"}}; nested field errors are keyed with
dots (postal_address.city). `message` and the messages in `fields` are in the language of
Accept-Language (pl, en), else the customer's profile language, else English; `field_codes` gives
each field message as a stable code with its values ({"code": "length", "params": {"min": 1, "max": 100}}). Lists answer {"items": [...], "next_cursor": "..." | null}, newest first
wherever items have a time. A list that pages takes ?limit=&cursor=: limit is 1 to 100, 50
when absent, anything else is 400 validation_error naming limit; cursor is the next_cursor of
the previous page, opaque, absent for the first page, and one the list did not hand out is 400
validation_error naming cursor. Every response carries X-Request-Id (echoed when the client
sent a sane one). The client IP is the TCP peer, or the right-most untrusted X-Forwarded-For
hop when the peer is in TRUSTED_PROXIES (empty by default); a malformed hop ends the walk at
the last trusted address. Unknown paths answer 404 not_found and wrong methods 405
method_not_allowed in the same error shape (a browser's GET for a page outside /api/ gets the
panel's not-found page, 404 text/html); an unexpected fault is 500 internal_error.
Every answer carries Cache-Control: no-store and X-Content-Type-Options: nosniff. A request
body is JSON sent as Content-Type: application/json (a charset parameter must be UTF-8; any
other type is 415 unsupported_media_type), nested at most 32 levels deep (deeper is 400
malformed_json), at most 1 MB (413); a chunked body is read whole, another transfer coding is
411. A request line (method, path and query) over 8 KB is 414 uri_too_long, a header line over
8 KB or headers over 64 KB 431 headers_too_large, in the error shape and in English (they are
answered before the headers are understood). Text that is one line on a page, an invoice or an e-mail (names, city, address, company
name, reasons) must be printable: line breaks, control characters and bidi controls are 400
naming the field. Money amounts are ASCII digits.
"""


class FieldConverter(OpenAPIConverter):
    """apispec's converter, except that "not sent" is never published as null.

    A field declared ``load_default=None`` (an optional ``cursor`` or ``kind``, say) means "not
    sent": the first page, every kind. apispec writes that as ``default: null``, also on a schema
    that is not nullable, which validators rightly reject. So: a field that refuses null has no
    default, and a query parameter, which is text or absent and can never be null, is neither
    nullable nor defaults to null. A body field that takes null keeps ``nullable`` and its null.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parameter_attribute_functions.append(self.parameter_never_null)

    def field2default(self, field, **kwargs) -> dict:
        default = super().field2default(field, **kwargs)
        if "default" in default and default["default"] is None and not field.allow_none:
            del default["default"]
        return default

    def parameter_never_null(self, field, ret: dict, **kwargs) -> dict:
        schema = ret.get("schema", {})
        schema.pop("nullable", None)
        if "default" in schema and schema["default"] is None:
            del schema["default"]
        if "enum" in schema:
            schema["enum"] = [value for value in schema["enum"] if value is not None]
        return {}


class Plugin(MarshmallowPlugin):
    Converter = FieldConverter


def _ref(spec: APISpec, schema) -> dict:
    return {"$ref": f"#/components/schemas/{_name(spec, schema)}"}


def _name(spec: APISpec, schema) -> str:
    name = schema.__name__.removesuffix("Schema") or schema.__name__
    if name not in spec.components.schemas:
        spec.components.schema(name, schema=schema)
    return name


@cache
def openapi_document() -> dict:
    spec = APISpec(title="Introserv billing panel API", version=VERSION, openapi_version="3.0.3",
                   plugins=[Plugin()], info={"description": CONVENTIONS})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "description": "token from POST /api/v1/sessions"})
    spec.components.schema("Error", schema=ErrorSchema)
    error = {"$ref": "#/components/schemas/Error"}
    for route in ROUTES:
        operation: dict = {"operationId": route.name, "summary": route.summary, "tags": list(route.tags) or ["api"]}
        if route.description:
            operation["description"] = route.description
        if route.auth:
            operation["security"] = [{"bearer": []}]
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _path_names(route.path)]
        if route.query is not None:
            parameters.append({"in": "query", "schema": route.query})
        if route.idempotent:
            parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 200},
                               "description": "Scoped to the account and the route: a retry with the same key "
                                              "returns the first answer and moves nothing again; the same key "
                                              "with another body is 422 idempotency_conflict; a retry while the "
                                              "first request with the key is still running is 409 "
                                              "request_in_progress with Retry-After."})
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _ref(spec, route.body)}}}
        responses: dict = {}
        if route.status == 204:
            responses["204"] = {"description": "done"}
        elif route.content_type != "application/json":
            responses[str(route.status)] = {"description": "the document", "content": {
                route.content_type: {"schema": {"type": "string", "format": "binary"}}}}
        elif route.response is not None:
            schema = _ref(spec, route.response)
            if route.many:
                schema = {"type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": {"type": "array", "items": schema},
                    "next_cursor": {"type": "string", "nullable": True}}}
            responses[str(route.status)] = {"description": "success", "content": {"application/json": {"schema": schema}}}
            for other in route.alternatives:
                responses[str(route.status)]["content"][other] = {"schema": {"type": "string", "format": "binary"}}
        else:
            responses[str(route.status)] = {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}
        statuses = set(route.errors) | ({401} if route.auth else set()) | {414, 431, 503}
        if route.idempotent:
            statuses.add(409)  # request_in_progress
        if route.body is not None:
            statuses |= {400, 411, 413, 415}
        for status in sorted(statuses):
            responses[str(status)] = {"description": STATUS_TEXT.get(status, "error"),
                                      "content": {"application/json": {"schema": error}}}
            if status == 429 or (status == 409 and route.idempotent):  # rate_limited, request_in_progress
                responses[str(status)]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                                     "description": "seconds to wait"}}
        operation["responses"] = responses
        spec.path(path=to_openapi_path(route.path), operations={route.method.lower(): operation})
    return spec.to_dict()


def _path_names(path: str) -> list[str]:
    import re
    return re.findall(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", path)
