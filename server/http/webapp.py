"""The web app (design §17): its page, hashed assets and configuration under a strict policy,
and CORS for the origins that host a copy of it.

The installed bundle is read once at start (:func:`opseal.wire.bundle.installed`); a file that
does not match its manifest stops the start. Every answer carries the Content-Security-Policy:
this origin only, no inline script or style, no plugin, no framing, no form posting anywhere,
and Trusted Types so no string can become script.
"""

from __future__ import annotations

from aiohttp import web

from opseal.wire import ops
from opseal.wire.bundle import INDEX, Bundle, installed

from ..errors import NotFound
from .keys import SETTINGS
from .parse import reply
from .routing import EndpointRoutes

__all__ = ["CSP", "WEB_BUNDLE", "cors_headers", "preflight", "routes", "security_headers"]

routes = EndpointRoutes()
WEB_BUNDLE = web.AppKey("web_bundle", Bundle)

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",  # blob: photos decrypted here; data: the empty icon
        "connect-src 'self'",  # CSP 3: 'self' also allows ws: and wss: to this host
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "X-Frame-Options": "DENY",
}


def load(app: web.Application) -> None:
    """Read the installed bundle into ``app`` (nothing when OpSeal was installed unbuilt)."""
    bundle = installed()
    if bundle is not None:
        app[WEB_BUNDLE] = bundle


def security_headers(response: web.StreamResponse) -> web.StreamResponse:
    """``response`` with the policy and the headers every answer of this server carries."""
    for name, value in SECURITY.items():
        response.headers.setdefault(name, value)
    return response


def _file(request: web.Request, name: str, media: str, cache: str) -> web.Response:
    bundle = request.app.get(WEB_BUNDLE)
    if bundle is None:
        raise NotFound("this server was installed without its web app (run `make web-build`)")
    data = bundle.files.get(name)
    if data is None:
        raise NotFound(f"no such file of the web app: {name}")
    response = web.Response(body=data, content_type=media, charset="utf-8")
    response.headers["Cache-Control"] = cache
    return response


@routes.endpoint("web_index")
async def index(request: web.Request) -> web.Response:
    """The page; revalidated on every load, so a new build is picked up at once."""
    return _file(request, INDEX, "text/html", "no-cache")


@routes.endpoint("web_js")
async def script(request: web.Request) -> web.Response:
    """A script, named by its hash: cached for good."""
    name = f"assets/{request.match_info['script']}.js"
    return _file(request, name, "text/javascript", "public, max-age=31536000, immutable")


@routes.endpoint("web_css")
async def style(request: web.Request) -> web.Response:
    """A style sheet, named by its hash: cached for good."""
    name = f"assets/{request.match_info['style']}.css"
    return _file(request, name, "text/css", "public, max-age=31536000, immutable")


@routes.endpoint("web_config")
async def config(request: web.Request) -> web.Response:
    """The app's configuration when this server hosts it: the API is this origin."""
    bundle = request.app.get(WEB_BUNDLE)
    settings = request.app[SETTINGS]
    response = reply(ops.WebConfig(api="", bundle_hash=bundle.bundle_hash if bundle else "",
                                   lock_after_seconds=settings.web_lock_after))  # fmt: skip
    response.headers["Cache-Control"] = "no-cache"
    return response


CORS_HEADERS = "Authorization, Content-Type, Range, Idempotency-Key, X-Request-Id"
CORS_EXPOSED = "Content-Range, ETag, X-Request-Id, Retry-After"


def preflight(request: web.Request) -> web.StreamResponse | None:
    """The answer to a CORS preflight from one of the configured ``web_origins``, else None."""
    if (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and request.headers.get("Origin", "") in request.app[SETTINGS].allowed_web_origins
    ):
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE"
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return response
    return None


def cors_headers(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """``response`` as the pages of the configured ``web_origins`` may read it, with the
    security headers (:data:`SECURITY`) every answer carries (an answer already sent as it
    is)."""
    if response.prepared:
        return response
    origin = request.headers.get("Origin", "")
    if origin and origin in request.app[SETTINGS].allowed_web_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        response.headers["Vary"] = "Origin"
    return security_headers(response)
