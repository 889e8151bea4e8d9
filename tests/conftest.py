import pytest

NEEDS_SERVERS = ("integration", "e2e")


def pytest_collection_modifyitems(items):
    for item in items:
        path = str(item.fspath)
        for kind in ("integration", "e2e", "faults"):
            if f"/tests/{kind}/" in path:
                item.add_marker(getattr(pytest.mark, kind))
    # A plain `pytest` gets the same check as `make test`: a machine without the servers the
    # integration and end-to-end tests need ends the session in one line, not one error per test.
    if any(item.get_closest_marker(kind) for item in items for kind in NEEDS_SERVERS):
        from tests import preflight
        try:
            preflight.check()
        except preflight.Missing as missing:
            raise pytest.UsageError(f"preflight: {missing}") from None
