"""Stand-ins for the outside world on a developer's machine: an SMTP relay and telephony gateways.

Both answer JSON over a threaded stdlib HTTP server and keep what they received in a
:class:`Record`, which :class:`StandInApi` lists, forgets and breaks on purpose; the rest of
what they share is here too. See README.md in this folder for their APIs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1 << 20
MAX_KEPT = 10_000


class JsonRequestHandler(BaseHTTPRequestHandler):
    """A request handler that speaks JSON and keeps quiet unless asked."""

    protocol_version = "HTTP/1.1"
    verbose = False

    @property
    def route(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def query(self, name: str) -> str | None:
        # A literal "+" in a query is meant as a plus here (+48..., user+tag@...), not a space.
        values = parse_qs(urlsplit(self.path).query.replace("+", "%2B")).get(name)
        return values[0] if values else None

    def read_json(self):
        """The request body as JSON, or None after answering 400 for a bad one."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            self.send_error_json(413, "payload_too_large", "body over 1 MB")
            return None
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            self.send_error_json(400, "malformed_json", "the body is not JSON")
            return None

    def send_json(self, status: int, body) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a held "timeout" request); nothing to tell it

    def send_error_json(self, status: int, code: str, message: str) -> None:
        self.send_json(status, {"error": {"code": code, "message": message}})

    def not_found(self) -> None:
        self.send_error_json(404, "not_found", f"no route {self.command} {self.route}")

    def log_message(self, format, *args):
        if self.verbose:
            super().log_message(format, *args)


class Record:
    """What a stand-in received, newest first (at most ``MAX_KEPT``), and the mode it answers in."""

    def __init__(self, modes: Sequence[str]):
        self.modes = tuple(modes)
        self.mode = self.modes[0]  # the first mode is the one that works
        self.lock = threading.Lock()
        self.items: list[dict] = []

    def keep(self, item: dict) -> dict:
        with self.lock:
            self.items.insert(0, item)
            del self.items[MAX_KEPT:]
        return item

    def listing(self, wanted: Callable[[dict], bool] | None = None) -> list[dict]:
        with self.lock:
            items = list(self.items)
        return [item for item in items if wanted(item)] if wanted else items

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class StandInApi(JsonRequestHandler):
    """The HTTP API every stand-in has: ``GET /health``, ``GET`` and ``DELETE`` of what it received
    (``listing_path``, filtered by ``?to=``), and ``GET`` and ``PUT /control {"mode": ...}`` to break it.

    A stand-in names its ``listing_path``, says which items are ``to`` an address, adds its
    own routes by overriding ``do_GET`` or ``do_POST`` and calling these for the rest, and its
    own settings of ``/control`` with ``control`` and ``controls``.
    """

    record: Record
    listing_path = "/items"

    def health(self) -> dict:
        return {"status": "ok", "mode": self.record.mode}

    def is_to(self, item: dict, to: str) -> bool:
        raise NotImplementedError

    def do_GET(self):
        if self.route == "/health":
            self.send_json(200, self.health())
        elif self.route == self.listing_path:
            to = self.query("to")
            self.send_json(200, {"items": self.record.listing((lambda item: self.is_to(item, to)) if to else None)})
        elif self.route == "/control":
            self.send_json(200, self.controls())
        else:
            self.not_found()

    def do_DELETE(self):
        if self.route != self.listing_path:
            return self.not_found()
        self.record.clear()
        self.send_json(200, {"items": []})

    def do_PUT(self):
        if self.route != "/control":
            return self.not_found()
        body = self.read_json()
        if body is None:
            return
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in self.record.modes:
            return self.send_error_json(400, "validation_error", f"mode must be one of {', '.join(self.record.modes)}")
        if (refusal := self.control(body)) is not None:
            return self.send_error_json(400, "validation_error", refusal)
        self.record.mode = mode
        self.send_json(200, self.controls())

    def control(self, body: dict) -> str | None:
        """A stand-in's own settings of ``PUT /control`` besides ``mode``: applied, or why not (nothing applied)."""
        return None

    def controls(self) -> dict:
        """What ``GET /control`` and ``PUT /control`` answer."""
        return {"mode": self.record.mode}

    @classmethod
    def serving(cls, record: Record, verbose: bool = False) -> type[StandInApi]:
        """This API bound to one record (a handler class for ``ThreadingHTTPServer``)."""
        return type(cls.__name__, (cls,), {"record": record, "verbose": verbose})


def serve_until_stopped(server: ThreadingHTTPServer, banner: str, on_stop=lambda: None) -> None:
    """Serve in this thread until SIGTERM or Ctrl-C, then close everything."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(banner, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        on_stop()
        print("stopped", file=sys.stderr, flush=True)


class StandIn:
    """A stand-in running as its own process: ``with StandIn("deploy.dev.mail", [...], health_url) as s:``."""

    def __init__(self, module: str, args: list[str], health_url: str, ready_within: float = 15.0):
        self.module, self.args, self.health_url, self.ready_within = module, args, health_url, ready_within
        self.process: subprocess.Popen | None = None

    def start(self) -> StandIn:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        # A file, not a pipe: a pipe nobody reads would block a chatty process.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([sys.executable, "-m", self.module, *self.args], cwd=root, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
        deadline = time.monotonic() + self.ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited: {self.output()}")
            try:
                with direct.open(self.health_url, timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.module} did not answer {self.health_url} within {self.ready_within} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        """What the process printed so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
