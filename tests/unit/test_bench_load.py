"""The benchmark's HTTP client (bench/load.py): what it counts as an answer and as an error, and
that a keep-alive connection the server has closed is opened again rather than counted as a
failure of the stack."""
from __future__ import annotations

import json
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from bench.load import TARGETS, HttpClient, run
from tests.support import http_server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    close_each = False

    def do_GET(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization"), None))
        if self.path == "/hello" or self.headers.get("Authorization") == "Bearer good":
            self._answer(200, {"ok": True})
        else:
            self._answer(401, {"error": {"code": "unauthenticated"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.command, self.path, self.headers.get("Idempotency-Key"), body))
        self._answer(201, {"status": "active"})

    def _answer(self, status, document):
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        # as a server dropping an idle keep-alive connection would: without a word to the client
        self.close_connection = Handler.close_each

    def log_message(self, *args):
        pass


@contextmanager
def server(close_each=False):
    Handler.seen, Handler.close_each = [], close_each
    with http_server(Handler) as httpd:
        url = f"http://127.0.0.1:{httpd.server_port}"
        yield HttpClient({"gateway": url, "hello": url})


def test_a_read_is_an_answer_only_when_it_is_a_200():
    with server() as client:
        _, read = TARGETS["profile"]
        _, hello = TARGETS["http_hello"]
        assert read(client, {"token": "good"}, 0) is True
        refused = read(client, {"token": "stolen"}, 1)
        assert refused.startswith('{"error"') and "unauthenticated" in refused
        assert hello(client, {}, 2) is True
        assert [path for _, path, _, _ in Handler.seen] == ["/api/v1/profile", "/api/v1/profile", "/hello"]
        client.close()


def test_an_order_is_posted_as_json_with_its_own_key():
    _, place_order = TARGETS["place_order"]
    with server() as client:
        assert place_order(client, {"token": "good"}, 0) is True
        assert place_order(client, {"token": "good"}, 1) is True
        (_, path, first_key, body), (_, _, second_key, _) = Handler.seen
        assert path == "/api/v1/orders" and body["plan_id"] == "vps-s"
        assert first_key and second_key and first_key != second_key
        client.close()


def test_a_connection_the_server_closed_is_opened_again():
    with server(close_each=True) as client:
        _, read = TARGETS["profile"]
        assert [read(client, {"token": "good"}, n) for n in range(3)] == [True, True, True]
        assert len(Handler.seen) == 3
        client.close()


class Tokens(BaseHTTPRequestHandler):
    """Answers every read and order, and notes whose token each came with."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_GET(self):
        self._answer({"ok": True}, 200)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer({"status": "active"}, 201)

    def _answer(self, document, status):
        Tokens.seen.append((self.command, self.headers["Authorization"].removeprefix("Bearer ")))
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_orders_are_placed_for_other_customers_than_the_reads_read():
    accounts = [{"account_id": f"a-{n}", "token": f"t-{n}"} for n in range(100)]
    read, placed = set(), set()
    with http_server(Tokens) as httpd:
        url = f"http://127.0.0.1:{httpd.server_port}"
        setup = {"gateway": url, "hello": url, "accounts": accounts}
        for target, clients in (("orders", 1), ("place_order", 1), ("place_order", 10), ("orders", 10)):
            Tokens.seen = []
            assert run(target, clients, 100, setup)["errors"] == 0
            customers = {token for _, token in Tokens.seen}
            if clients == 1:   # one customer after another, a burst of ten each
                first, last = {f"t-{n}" for n in range(10)}, {f"t-{n}" for n in range(90, 100)}
                assert customers == (first if target == "orders" else last)
            (read if target == "orders" else placed).update(customers)
    assert read and placed and not read & placed
