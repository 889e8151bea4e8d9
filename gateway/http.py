"""The gateway's HTTP plumbing: routes that speak only JSON and the API's error shape.

Every route is declared once with :func:`route`; the declaration both registers the Nameko
HTTP entrypoint and describes it for the OpenAPI document, so the two cannot drift apart.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field

import structlog
from eventlet.wsgi import HeaderLineTooLong, HeadersTooLarge
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from gateway.language import DEFAULT_LANGUAGE, localised_body, requested_language
from services.common.config import env
from services.common.errors import DomainError, ValidationError
from services.common.logging import REQUEST_ID
from services.common.metrics import MeasuredHttp
from services.common.schemas import load

log = structlog.get_logger("gateway")

MAX_BODY = 1024 * 1024
# The API's own shapes nest a few levels (an order's fields, a postal address): deeper is an attack
# on the parser (a thousand levels made json raise RecursionError), refused before parsing.
MAX_DEPTH = 32
ROUTES: list["RouteSpec"] = []
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def with_safe_headers(response: Response) -> Response:
    """Every answer: never kept by a cache (tokens, 2FA secrets, recovery codes travel in bodies)
    and never content-sniffed into something other than its declared type. A response that set
    its own caching (the panel's static files) keeps it."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def json_response(status: int, body, headers: dict | None = None) -> Response:
    payload = "" if body is None else json.dumps(body, ensure_ascii=False)
    response = Response(payload, status=status, headers=headers or {})
    if body is not None:
        response.content_type = "application/json; charset=utf-8"
    return response


def error_response(error: DomainError, request_id: str | None = None,
                   language: str = DEFAULT_LANGUAGE) -> Response:
    """The error shape, its ``message`` and field messages in ``language`` (gateway/language.py)."""
    headers = {}
    retry_after = error.details.get("retry_after") if isinstance(error.details, dict) else None
    if error.status in (409, 429) and retry_after:  # rate_limited, request_in_progress: when to ask again
        headers["Retry-After"] = str(max(1, int(retry_after)))
    if request_id:
        headers["X-Request-Id"] = request_id
    return json_response(error.status, localised_body(error.to_body(), language), headers)


def wants_a_page(request) -> bool:
    """A browser asking for an address outside the API: it gets the panel's page, not the error shape."""
    return not request.path.startswith("/api/") and request.path != "/health" and \
        request.accept_mimetypes.accept_html and request.method in ("GET", "HEAD")


class JsonWsgiApp(WsgiApp):
    """Unknown paths and methods answer in the error shape too, not werkzeug's HTML."""

    def __call__(self, environ, start_response):
        mark_terminated_input(environ)
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            if exc.code == 404 and wants_a_page(request):
                from gateway.panel.routes import not_found_page  # the panel's pages import this module
                return not_found_page(request)(environ, start_response)
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code, "validation_error")
            response = error_response(DomainError(code, exc.description or exc.name, status=exc.code),
                                      language=requested_language(request) or DEFAULT_LANGUAGE)
            return with_safe_headers(response)(environ, start_response)
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class ApiProtocol(HttpOnlyProtocol):
    """Nameko's HTTP protocol, except that what eventlet refuses before the API sees a request is
    answered in the error shape, where eventlet answers with an empty body: a request line over
    its limit (8 KB: the method, the path and the query) is 414 ``uri_too_long``; a header line
    over 8 KB, or headers over 64 KB in all, 431 ``headers_too_large``. Both come before the
    headers are understood, so their message is in English."""

    def _read_request_line(self):
        line = super()._read_request_line()
        if len(line) < self.server.url_length_limit:
            return line
        self._refuse(DomainError("uri_too_long", "The request line is longer than 8 KB: shorten the query.",
                                 details={"limit": self.server.url_length_limit}))
        return ""   # no request: eventlet closes the connection

    def parse_request(self):
        try:
            return super().parse_request()
        except (HeaderLineTooLong, HeadersTooLarge):
            self._refuse(DomainError("headers_too_large", "A header is longer than 8 KB, or all of them "
                                     "together longer than 64 KB."))
            return False   # eventlet closes the connection

    def _refuse(self, error: DomainError) -> None:
        response = with_safe_headers(error_response(error, request_id=uuid.uuid4().hex))   # with its Content-Length
        head = [f"HTTP/1.1 {response.status}", *(f"{name}: {value}" for name, value in response.headers.items()),
                "Connection: close"]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.get_data())
        self.close_connection = 1


class ApiWebServer(WebServer):
    def get_wsgi_app(self):
        return MeasuredHttp(JsonWsgiApp(self))

    def get_wsgi_server(self, sock, wsgi_app, protocol=ApiProtocol, debug=False):
        return super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)


class ApiEntrypoint(HttpRequestHandler):
    """A Nameko HTTP entrypoint whose answers and failures are JSON in the API's shape."""

    server = ApiWebServer()

    def handle_request(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.shallow = False
        try:
            from eventlet.event import Event
            args, kwargs = self.get_entrypoint_parameters(request)
            event = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data={REQUEST_ID: request.request_id},
                handle_result=functools.partial(self.handle_result, event))
            result = event.wait()
            response = self.response_from_result(result)
        except Exception as exc:
            response = self.response_from_exception(exc, request.request_id,
                                                    getattr(request, "language", None)
                                                    or requested_language(request) or DEFAULT_LANGUAGE)
        response.headers["X-Request-Id"] = request.request_id
        return with_safe_headers(response)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, body = result
        return json_response(status, body)

    def response_from_exception(self, exc, request_id=None, language=DEFAULT_LANGUAGE):
        if isinstance(exc, DomainError):
            return error_response(exc, request_id, language)
        log.exception("unhandled error in the gateway", exc_info=exc)
        return error_response(DomainError("internal_error", "Something went wrong on our side.",
                                          status=500), request_id, language)


@dataclass
class RouteSpec:
    method: str
    path: str
    name: str
    summary: str
    body: object = None
    query: object = None
    response: object = None
    status: int = 200
    auth: bool = True
    errors: tuple = ()
    many: bool = False
    idempotent: bool = False
    description: str = ""
    tags: tuple = field(default_factory=tuple)
    content_type: str = "application/json"
    # Other media types the same route answers besides JSON (a statement as CSV or PDF).
    alternatives: tuple = ()


@dataclass
class Call:
    """What a route handler gets: the parsed request and, behind auth, the account."""

    request: object
    ip: str
    body: dict | None = None
    query: dict | None = None
    account_id: str | None = None
    session_id: str | None = None
    token: str | None = None

    @property
    def user_agent(self) -> str:
        return (self.request.headers.get("User-Agent") or "")[:300]

    @property
    def idempotency_key(self) -> str | None:
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not 1 <= len(key) <= 200:
            raise ValidationError({"Idempotency-Key": ["must be 1 to 200 characters"]})
        return key


def mark_terminated_input(environ) -> None:
    """Let werkzeug read a chunked body: the server (eventlet) takes the chunks off and ends the
    stream at the last one, but without ``wsgi.input_terminated`` werkzeug hands out an empty
    stream for a body with no Content-Length, and a PATCH would change nothing and answer 200."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked":
        environ["wsgi.input_terminated"] = True


def request_body(request) -> bytes:
    """The whole body, chunked or not: 413 over 1 MB; 411 for a transfer coding we cannot read."""
    coding = request.headers.get("Transfer-Encoding", "").strip().lower()
    if coding and coding != "chunked":
        # eventlet reads only plain chunked bodies; anything else it would take as empty
        raise DomainError("length_required", "Send the body with Content-Length or as plain chunked "
                                             "transfer coding.")
    length = request.content_length
    if not coding and length is not None and length > MAX_BODY:
        raise DomainError("payload_too_large", "The request body is larger than 1 MB.")
    try:
        raw = request.stream.read(MAX_BODY + 1)
    except ValueError:  # a chunk size that is not a number
        raise DomainError("malformed_json", "The chunked body could not be read.") from None
    if len(raw) > MAX_BODY:
        raise DomainError("payload_too_large", "The request body is larger than 1 MB.")
    return raw


def refuse_other_media_types(request) -> None:
    """A body must say it is JSON (any charset parameter must be UTF-8): 415 otherwise.

    A form or text/plain post is what a browser sends cross-site without asking; parsing it
    as JSON anyway would make such a request work.
    """
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise DomainError("unsupported_media_type", "The body must be JSON: send it with "
                                                    "Content-Type: application/json.",
                          details={"content_type": (request.content_type or "")[:100]})


_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def nested_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether a JSON text opens more than ``limit`` arrays or objects inside one another.

    Read before parsing, so that a deep body never reaches the recursive parser. Only the
    structural characters are visited (brackets outside strings, quotes, backslashes), and
    a body with no more than ``limit`` brackets in all is answered without a scan.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth, in_string, escaped_at = 0, False, -1
    for found in _STRUCTURE.finditer(raw):
        at = found.start()
        if at == escaped_at:
            continue
        char = raw[at:at + 1]
        if in_string:
            if char == b"\\":
                escaped_at = at + 1
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def read_json(request) -> object:
    """The request body as JSON: 400 ``malformed_json`` when it does not parse or nests deeper
    than :data:`MAX_DEPTH`, 415 when it is not sent as JSON, 413 over 1 MB; no body is ``{}``."""
    raw = request_body(request)
    if not raw.strip():
        return {}
    refuse_other_media_types(request)
    if nested_deeper_than(raw, MAX_DEPTH):
        raise DomainError("malformed_json", f"The body nests deeper than {MAX_DEPTH} levels.",
                          details={"max_depth": MAX_DEPTH})
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DomainError("malformed_json", f"The body is not valid JSON: {exc}") from None


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def trusted_proxies() -> list:
    spec = env("TRUSTED_PROXIES", "")
    return [ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip()]


def client_ip(peer: str, forwarded_for: str | None, proxies: list) -> str:
    """The TCP peer, or the right-most untrusted X-Forwarded-For hop behind trusted proxies."""
    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in proxies)

    if not proxies or not trusted(peer) or not forwarded_for:
        return peer
    nearest = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return nearest  # a malformed hop: trust nothing beyond it
        if not trusted(hop):
            return hop
        nearest = hop
    return nearest


def to_openapi_path(path: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", path)


def route(method: str, path: str, *, summary: str, body=None, query=None, response=None,
          status: int = 200, auth: bool = True, errors: tuple = (), many: bool = False,
          idempotent: bool = False, description: str = "", tags: tuple = (),
          content_type: str = "application/json", alternatives: tuple = ()):
    """Declare an API route: entrypoint, request parsing, auth and its OpenAPI description."""
    def decorate(fn):
        spec = RouteSpec(method, path, fn.__name__, summary, body, query, response, status, auth,
                         tuple(errors), many, idempotent, description, tuple(tags), content_type,
                         tuple(alternatives))
        ROUTES.append(spec)

        @functools.wraps(fn)
        def handler(self, request, **path_values):
            call = Call(request=request, ip=client_ip(request.remote_addr or "", request.headers.get("X-Forwarded-For"),
                                                      self.proxies))
            try:
                if auth:
                    self.authenticate(call)
                if body is not None:
                    call.body = load(body, read_json(request))
                if query is not None:
                    call.query = load(query, {k: v for k, v in request.args.items()})
                return fn(self, call, **path_values)
            except DomainError as error:
                # The refusal is said in the language asked for, else the customer's: one profile call,
                # never after a 5xx (profile may be what failed, and the answer must not wait twice).
                request.language = requested_language(request) or (
                    self.customer_language(call) if error.status < 500 else DEFAULT_LANGUAGE)
                raise
        return ApiEntrypoint.decorator(method, path)(handler)
    return decorate
