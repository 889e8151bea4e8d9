"""The panel's own HTTP routes: page shells, vendored static files and the 2FA QR code as SVG.

These are not API routes: they are declared with :func:`page`, which registers a Nameko
entrypoint on the gateway's one web server (``ApiEntrypoint``) but stays out of the OpenAPI
document. Every page is a server-rendered shell with its texts from the message catalogue;
the data comes from the public API, fetched by the browser with the customer's bearer token.
"""
from __future__ import annotations

import functools
import gettext
import json
import mimetypes
from pathlib import Path

import pycountry
import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from gateway.http import ApiEntrypoint, read_json
from services.common.errors import ValidationError

HERE = Path(__file__).parent
STATIC = HERE / "static"
LANGUAGES = ("en", "pl")
LANGUAGE_COOKIE = "panel_lang"
# The panel's scripts and styles are its own files: nothing from another origin may load.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_QR_TEXT = 1024


def page(path: str, method: str = "GET"):
    """Declare a panel route: a Nameko entrypoint on the gateway's server, not in the OpenAPI document."""
    def decorate(fn):
        @functools.wraps(fn)
        def handler(self, request, **path_values):
            return fn(self, request, **path_values)
        return ApiEntrypoint.decorator(method, path)(handler)
    return decorate


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@functools.cache
def catalogue(language: str) -> dict:
    """The flat message catalogue of one language; a key missing in Polish falls back to English."""
    english = _flatten(yaml.safe_load((HERE / "messages" / "en.yml").read_text("utf-8")))
    if language == "en":
        return english
    own = _flatten(yaml.safe_load((HERE / "messages" / f"{language}.yml").read_text("utf-8")))
    return {**english, **own}


@functools.cache
def countries(language: str) -> list[tuple[str, str]]:
    """(code, name) of every country, named and sorted in the customer's language."""
    names = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True)
    listed = [(c.alpha_2, names.gettext(c.name)) for c in pycountry.countries]
    return sorted(listed, key=lambda item: item[1])


def language_of(request) -> str:
    """The profile's language (the panel keeps it in a cookie), else the browser's, else English."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en")


@functools.cache
def templates() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def render(request, template: str, page_name: str, status: int = 200, **context) -> Response:
    language = language_of(request)
    messages = catalogue(language)

    def t(key: str, **values) -> str:
        text = messages.get(key, key)
        return text.format(**values) if values else text

    html = templates().get_template(template).render(
        t=t, lang=language, page=page_name, messages_json=json.dumps(messages, ensure_ascii=False),
        countries=countries(language), **context)
    return Response(html, status=status, content_type="text/html; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def not_found_page(request) -> Response:
    """404 for a panel address that does not exist: a page in the customer's language, not JSON."""
    return render(request, "not_found.html", "not-found", status=404)


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as an SVG document (drawn here so the browser needs no library)."""
    import qrcode.image.svg   # here: once per 2FA enrolment, and it brings Pillow (about 5 MB resident)
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


class PanelRoutes:
    """Pages of the web panel (docs/requirements.md P, S, N, O, B, I), each a shell filled from the public API."""

    @page("/")
    def panel_root(self, request):
        return Response(status=302, headers={"Location": "/home"})

    @page("/home")
    def panel_home(self, request):
        return render(request, "home.html", "home")

    @page("/login")
    def panel_login(self, request):
        return render(request, "login.html", "login")

    @page("/register")
    def panel_register(self, request):
        return render(request, "register.html", "register")

    @page("/confirm-email")
    def panel_confirm_email(self, request):
        return render(request, "confirm_email.html", "confirm-email")

    @page("/forgot-password")
    def panel_forgot_password(self, request):
        return render(request, "forgot_password.html", "forgot-password")

    @page("/reset-password")
    def panel_reset_password(self, request):
        # The token rides in the link's query; the page takes it out of the address bar at once.
        return render(request, "reset_password.html", "reset-password")

    @page("/profile")
    def panel_profile(self, request):
        return render(request, "profile.html", "profile")

    @page("/profile/notifications")
    def panel_notifications(self, request):
        return render(request, "notifications.html", "notifications")

    @page("/security")
    def panel_security(self, request):
        return render(request, "security.html", "security")

    @page("/orders")
    def panel_orders(self, request):
        return render(request, "orders.html", "orders")

    @page("/orders/new")
    def panel_new_order(self, request):
        return render(request, "order_new.html", "order-new")

    @page("/orders/<order_id>")
    def panel_order(self, request, order_id):
        return render(request, "order.html", "order", order_id=order_id)

    @page("/balance")
    def panel_balance(self, request):
        return render(request, "balance.html", "balance")

    @page("/invoices")
    def panel_invoices(self, request):
        return render(request, "invoices.html", "invoices")

    @page("/invoices/<invoice_id>")
    def panel_invoice(self, request, invoice_id):
        return render(request, "invoice.html", "invoice", invoice_id=invoice_id)

    @page("/static/<path:name>")
    def panel_static(self, request, name):
        path = safe_join(str(STATIC), name)
        if path is None or not Path(path).is_file():
            return Response("not found", status=404, content_type="text/plain")
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(Path(path).read_bytes(), content_type=kind,
                        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    @page("/panel/qr.svg", method="POST")
    def panel_qr(self, request):
        # POST, not GET: the otpauth URI carries the 2FA secret, which must not land in access logs.
        body = read_json(request)
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not 0 < len(text) <= MAX_QR_TEXT:
            raise ValidationError({"text": [f"must be 1 to {MAX_QR_TEXT} characters"]})
        return Response(qr_svg(text), content_type="image/svg+xml; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
