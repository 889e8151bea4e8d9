"""The gateway's OpenAPI document as a client generator or a validator reads it, without I/O."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate

import gateway.service  # noqa: F401  (declares every route)
from gateway.openapi import openapi_document

PAGED_LISTS = ("/api/v1/balance/transactions", "/api/v1/invoices", "/api/v1/notifications/sent",
               "/api/v1/orders", "/api/v1/orders/history", "/api/v1/security/logins",
               "/api/v1/security/events")


def query_parameters(document: dict) -> dict[tuple[str, str], dict]:
    return {(path, parameter["name"]): parameter
            for path, operations in document["paths"].items()
            for operation in operations.values()
            for parameter in operation.get("parameters", ()) if parameter["in"] == "query"}


def test_the_document_passes_an_independent_openapi_validator():
    validate(openapi_document())


def test_no_query_parameter_can_be_null_or_defaults_to_null():
    # A query string is text or absent: a client that sent "cursor=None" would be refused.
    parameters = query_parameters(openapi_document())
    assert parameters
    for (path, name), parameter in parameters.items():
        schema = parameter["schema"]
        assert "nullable" not in schema, (path, name)
        assert schema.get("default", "absent") is not None, (path, name)
        assert None not in schema.get("enum", ()), (path, name)


@pytest.mark.parametrize("path", PAGED_LISTS)
def test_every_paged_list_takes_an_optional_cursor_and_a_limit_of_1_to_100(path):
    parameters = query_parameters(openapi_document())
    cursor, limit = parameters[(path, "cursor")], parameters[(path, "limit")]
    assert not cursor.get("required") and cursor["schema"]["type"] == "string"
    assert "default" not in cursor["schema"]
    assert not limit.get("required")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (1, 100, 50)


def test_a_body_field_that_takes_null_still_says_so():
    operation = openapi_document()["components"]["schemas"]["StartVerification"]["properties"]["operation"]
    assert operation["nullable"] is True
