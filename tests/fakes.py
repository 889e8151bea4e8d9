"""Stand-ins the tests share: for other services (profile, the ledger) where a test runs one
service alone, and for the outside world (VIES) speaking its real protocol.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ViesStandIn:
    """The EU's VIES register as its REST API answers: ``GET .../ms/<prefix>/vat/<number>``.

    ``registered`` holds the VAT ids it knows (``DE136695976``); ``mode`` is ``ok``, ``down``
    (the member state does not answer: ``MS_UNAVAILABLE``) or ``slow`` (answers after ``delay``
    seconds). ``asked`` lists the VAT ids it was asked about, in order. Use it as a context manager.
    """

    PATH = re.compile(r"^/rest-api/ms/(?P<prefix>[A-Z]{2})/vat/(?P<number>[0-9A-Z+*]+)$")

    def __init__(self, registered=(), mode: str = "ok", delay: float = 0.0):
        self.registered = set(registered)
        self.mode = mode
        self.delay = delay
        self.asked: list[str] = []
        self._server = None

    @property
    def url(self) -> str:
        """The ``VIES_URL`` template that points the services here."""
        return f"http://127.0.0.1:{self._server.server_port}/rest-api/ms/{{prefix}}/vat/{{number}}"

    def answer(self, prefix: str, number: str) -> dict:
        vat_id = prefix + number
        self.asked.append(vat_id)
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "down":
            return {"isValid": False, "requestDate": "2026-11-29T10:00:00.000Z", "userError": "MS_UNAVAILABLE",
                    "name": "---", "address": "---", "vatNumber": number}
        known = vat_id in self.registered
        return {"isValid": known, "requestDate": "2026-11-29T10:00:00.000Z",
                "userError": "VALID" if known else "INVALID", "name": "SCHMIDT GMBH" if known else "---",
                "address": "HAUPTSTRASSE 1, 10115 BERLIN" if known else "---", "vatNumber": number}

    def __enter__(self) -> "ViesStandIn":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                found = stand_in.PATH.match(self.path)
                if not found:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(stand_in.answer(found["prefix"], found["number"])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
