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
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from services.common.config import env
from services.common.errors import DomainError, ValidationError
from services.common.logging import REQUEST_ID
from services.common.metrics import MeasuredHttp
from services.common.schemas import load

log = structlog.get_logger("gateway")

MAX_BODY = 1024 * 1024
ROUTES: list["RouteSpec"] = []
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def json_response(status: int, body, headers: dict | None = None) -> Response:
    payload = "" if body is None else json.dumps(body, ensure_ascii=False)
    response = Response(payload, status=status, headers=headers or {})
    if body is not None:
        response.content_type = "application/json; charset=utf-8"
    return response


def error_response(error: DomainError, request_id: str | None = None) -> Response:
    headers = {}
    retry_after = error.details.get("retry_after") if isinstance(error.details, dict) else None
    if error.status == 429 and retry_after:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    if request_id:
        headers["X-Request-Id"] = request_id
    return json_response(error.status, error.to_body(), headers)


class JsonWsgiApp(WsgiApp):
    """Unknown paths and methods answer in the error shape too, not werkzeug's HTML."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code, "validation_error")
            response = error_response(DomainError(code, exc.description or exc.name, status=exc.code))
            return response(environ, start_response)
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class ApiWebServer(WebServer):
    def get_wsgi_app(self):
        return MeasuredHttp(JsonWsgiApp(self))


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
            response = self.response_from_exception(exc, request.request_id)
        response.headers["X-Request-Id"] = request.request_id
        return response

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, body = result
        return json_response(status, body)

    def response_from_exception(self, exc, request_id=None):
        if isinstance(exc, DomainError):
            return error_response(exc, request_id)
        log.exception("unhandled error in the gateway", exc_info=exc)
        return error_response(DomainError("internal_error", "Something went wrong on our side.",
                                          status=500), request_id)


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


def read_json(request) -> object:
    """The request body as JSON: 413 over 1 MB, 400 ``malformed_json`` when it does not parse."""
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise DomainError("payload_too_large", "The request body is larger than 1 MB.")
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise DomainError("payload_too_large", "The request body is larger than 1 MB.")
    if not raw.strip():
        return {}
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
          content_type: str = "application/json"):
    """Declare an API route: entrypoint, request parsing, auth and its OpenAPI description."""
    def decorate(fn):
        spec = RouteSpec(method, path, fn.__name__, summary, body, query, response, status, auth,
                         tuple(errors), many, idempotent, description, tuple(tags), content_type)
        ROUTES.append(spec)

        @functools.wraps(fn)
        def handler(self, request, **path_values):
            call = Call(request=request, ip=client_ip(request.remote_addr or "", request.headers.get("X-Forwarded-For"),
                                                      self.proxies))
            if auth:
                self.authenticate(call)
            if body is not None:
                call.body = load(body(), read_json(request))
            if query is not None:
                call.query = load(query(), {k: v for k, v in request.args.items()})
            return fn(self, call, **path_values)
        return ApiEntrypoint.decorator(method, path)(handler)
    return decorate
