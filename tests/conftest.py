import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        path = str(item.fspath)
        for kind in ("integration", "e2e", "faults"):
            if f"/tests/{kind}/" in path:
                item.add_marker(getattr(pytest.mark, kind))
