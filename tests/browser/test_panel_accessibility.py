"""Every page of the panel passes axe-core with no serious or critical violation (issue 18).

axe-core is vendored with the panel (gateway/panel/static/vendor/axe-core, no CDN) and loaded
into each page from the panel's own origin, so the pages' Content-Security-Policy stays as it is.
Pages are checked in English and Polish, at a desktop size and on a 390x844 phone, once filled
from the API (and the phone's menu once open).
"""
from __future__ import annotations


import pytest

from tests.browser.conftest import DESKTOP, PHONE, PUBLIC, every_page, settled

pytestmark = pytest.mark.e2e
AXE = "/static/vendor/axe-core/axe.min.js"
BLOCKING = ("serious", "critical")


def violations(page) -> list[dict]:
    """axe's serious and critical violations on the page as it is now, each with the nodes it names."""
    page.add_script_tag(url=AXE)
    found = page.evaluate("""async () => {
        const result = await axe.run(document, { resultTypes: ["violations"] });
        return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                               nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
    }""")
    return [item for item in found if item["impact"] in BLOCKING]


def test_the_vendored_axe_finds_a_violation_when_there_is_one(open_as):
    page = settled(open_as(None), "/login")
    page.evaluate("document.querySelector('#f-login').labels.forEach((label) => label.remove())")
    assert any(item["id"] == "label" for item in violations(page))


@pytest.mark.parametrize("language", ["en", "pl"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_no_page_has_a_serious_accessibility_violation(open_as, customers, language, size):
    customer = customers[language]
    viewport = PHONE if size == "phone" else DESKTOP
    pages = every_page(customer)
    found = {}
    page = open_as(customer, viewport)
    for path in pages:
        settled(page, path)
        if size == "phone":
            page.locator(".menu-toggle").click()
        found[path] = violations(page)
    visitor = open_as(None, viewport, language)
    for path in PUBLIC:
        found[path] = violations(settled(visitor, path))
    assert {path: items for path, items in found.items() if items} == {}
