"""The OpenAPI document the running gateway serves, as an outside validator reads it."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.e2e


def test_the_served_document_passes_an_independent_openapi_validator(api):
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    validate(document)
    assert {"/api/v1/balance/transactions", "/api/v1/invoices", "/api/v1/notifications/sent"} <= set(document["paths"])
