"""The codec server: Temporal's remote codec HTTP API over our EncryptionCodec.

The Web UI (and ``temporal ... --codec-endpoint``) POSTs the payloads it
holds to ``<endpoint>/decode`` as the proto JSON of
``temporal.api.common.v1.Payloads`` and shows what comes back; ``/encode``
does the reverse. Only this process holds the keys, so the server, its
database and the UI's backend never see plain payloads.

Who may decode:

- A client that sends ``Authorization: Bearer <token>`` with a configured
  token (the CLI, scripts).
- A browser signed in at ``/login`` with such a token: it gets an HttpOnly,
  SameSite=Lax session cookie. The Web UI of a dev server has no login of
  its own, so it cannot send a bearer token; it sends the cookie once its
  Data Encoder setting "Include cross-origin credentials" is on
  (``credentials: "include"`` on its fetch).

Browsers may call the API from the configured origins only (CORS with the
exact origin and credentials, never ``*``); a request whose ``Origin`` is
neither one of them nor this server's own is refused with 403, so another
page on the same machine cannot ride on the session cookie. Behind a
TLS-terminating proxy the server's own origin is its public URL
(``TRANSFER_CODEC_URL``, the one the Web UI calls), not the plain-HTTP
request it sees; ``X-Forwarded-*`` headers are not trusted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from app.codec_auth import DEFAULT_SESSION_TTL, SESSION_COOKIE, Sessions, TokenCheck, authenticate
from app.codec_log import MAX_LOGGED_HEADER, CodecAccessLogger, log_codec_call
from app.codec_pages import login_html, page, signed_in_html
from app.codec_request import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PAYLOADS, error, read_payloads
from app.config import CODEC_TOKEN_FILE_NAME, DEFAULT_CODEC_PORT, Settings
from app.encryption import EncryptionCodec, EncryptionError, KeyRing
from ledger.shown import quoted

__all__ = ["SESSION_COOKIE", "codec_app", "origin_of", "serving_codec"]

logger = logging.getLogger(__name__)

ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
CODEC_PATHS = frozenset({"/encode", "/decode"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def origin_of(url: str) -> str:
    """The browser origin (``scheme://host[:port]``) of a URL, as an ``Origin`` header spells it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in {("http", 80), ("https", 443)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def codec_app(
    codec: EncryptionCodec,
    *,
    tokens: Mapping[str, str],
    allowed_origins: Sequence[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_payloads: int = DEFAULT_MAX_PAYLOADS,
    session_ttl: timedelta = DEFAULT_SESSION_TTL,
    public_url: str | None = None,
) -> web.Application:
    """The codec server as an aiohttp application.

    Args:
        codec: Encrypts and decrypts the payloads.
        tokens: Bearer tokens accepted, by the person who holds each (names
            are logged, each call under its person's; tokens never).
        allowed_origins: Browser origins (``scheme://host:port``) allowed to
            call ``/encode`` and ``/decode``: the Web UI's.
        max_body_bytes: Larger request bodies get 413.
        max_payloads: Requests with more payloads get 413.
        session_ttl: How long a browser sign-in lasts.
        public_url: Where browsers reach this server (``TRANSFER_CODEC_URL``):
            behind a TLS proxy, ``https://codec.example.com``. Its origin is
            accepted as the server's own besides the one requests arrive at,
            and an https URL makes the session cookie Secure.
    """
    auth = TokenCheck(tokens)
    sessions = Sessions(session_ttl)
    origins = frozenset(origin_of(origin) for origin in allowed_origins)
    public = origin_of(public_url) if public_url else None
    secure_cookie = public is not None and public.startswith("https://")

    def own_origin(request: web.Request) -> str:
        """The origin browsers use for this server: an https public URL's, else the request's.

        An https public URL is a TLS proxy's, where the request seen here says
        http; an http one may name another port than the one served (--port).
        """
        return public if secure_cookie and public else f"{request.scheme}://{request.host}".lower()

    def is_own(request: web.Request, origin: str) -> bool:
        return origin in (public, f"{request.scheme}://{request.host}".lower())

    @web.middleware
    async def guard_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS for the allowed origins; 403 for any other cross-origin caller."""
        origin = request.headers.get("Origin")
        allowed = origin is not None and origin in origins
        if origin is not None and not allowed and not is_own(request, origin):
            # Quoted, so no newline can forge log lines; no query, which may hold a token.
            logger.warning(
                "refused %s %s from origin %s",
                request.method,
                quoted(request.path, MAX_LOGGED_HEADER),
                quoted(origin, MAX_LOGGED_HEADER),
            )
            return error(
                403,
                f"origin {quoted(origin, MAX_LOGGED_HEADER)} may not call this codec server",
                Vary="Origin",
            )
        cors = {"Vary": "Origin"}
        if origin is not None and allowed and request.path in CODEC_PATHS:
            cors |= {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
            }
        if request.method == "OPTIONS" and request.path in CODEC_PATHS:
            return _preflight(request, cors, allowed=allowed)
        try:
            response = await handler(request)
        except web.HTTPException as err:  # 404, 405: still answer the browser's CORS
            err.headers.update(cors)
            raise
        response.headers.update(cors)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def codec_call(request: web.Request) -> web.Response:
        caller = authenticate(request, auth, sessions)
        if caller is None:
            return error(
                401,
                "not signed in: send `Authorization: Bearer <token>` with your codec token, "
                "or sign this browser in at /login",
                **{"WWW-Authenticate": 'Bearer realm="codec"'},
            )
        operation = request.path.removeprefix("/")
        namespace = request.headers.get("X-Namespace")
        parsed = await read_payloads(
            request, max_body_bytes=max_body_bytes, max_payloads=max_payloads
        )
        if isinstance(parsed, web.Response):
            log_codec_call(
                caller, operation=operation, namespace=namespace, payloads=None,
                status=parsed.status,
            )  # fmt: skip
            return parsed
        count = len(parsed.payloads)
        try:
            if operation == "decode":
                result = await codec.decode(parsed.payloads)
            else:
                result = await codec.encode(parsed.payloads)
        except EncryptionError as err:
            logger.warning("%s failed for %s: %s", operation, caller.person, err)
            log_codec_call(
                caller, operation=operation, namespace=namespace, payloads=count, status=422
            )
            return error(422, str(err))
        log_codec_call(caller, operation=operation, namespace=namespace, payloads=count, status=200)
        return web.json_response({"payloads": [MessageToDict(payload) for payload in result]})

    async def login_form(request: web.Request) -> web.Response:
        caller = authenticate(request, auth, sessions)
        if caller is None or caller.via != "session":
            return page(login_html(""))
        return page(signed_in_html(own_origin(request), origins, caller.person))

    async def login(request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return page(login_html("That request is too large."), status=413)
        presented = form.get("token")
        person = auth.person(presented.strip()) if isinstance(presented, str) else None
        if person is None:
            logger.warning("sign-in refused: wrong token (from %s)", request.remote)
            return page(login_html("That token is not valid."), status=401)
        response = page(signed_in_html(own_origin(request), origins, person))
        response.set_cookie(
            SESSION_COOKIE,
            sessions.start(person),
            max_age=int(session_ttl.total_seconds()),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=secure_cookie or request.secure,
        )
        logger.info("browser signed in as %r (from %s)", person, request.remote)
        return response

    async def logout(request: web.Request) -> web.Response:
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            logger.info("browser signed out: %r (from %s)", session.person, request.remote)
        sessions.end(request.cookies.get(SESSION_COOKIE))
        response = page(login_html("Signed out."))
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=max_body_bytes, middlewares=[guard_origin])
    app.router.add_post("/encode", codec_call)
    app.router.add_post("/decode", codec_call)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/health", health)
    return app


def _preflight(request: web.Request, cors: dict[str, str], *, allowed: bool) -> web.Response:
    """Answer a CORS preflight (no credentials are sent with one, so none are checked)."""
    if not allowed:
        return error(403, "preflight refused: no allowed Origin", Vary="Origin")
    headers = cors | {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
    }
    # Chromium's Private Network Access asks before a page on a less private
    # address calls one on a more private address (a LAN UI, a loopback codec).
    if request.headers.get("Access-Control-Request-Private-Network") == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


def token_source(settings: Settings) -> str:
    """Where the codec tokens are configured, for messages (never a token itself)."""
    if settings.codec_tokens_text:
        return "TRANSFER_CODEC_TOKENS"
    if settings.codec_tokens_file:
        return settings.codec_tokens_file
    if settings.codec_token:
        return "TRANSFER_CODEC_TOKEN"
    return str(settings.data_dir / CODEC_TOKEN_FILE_NAME)


def codec_port(settings: Settings) -> int:
    """The port to listen on by default: TRANSFER_CODEC_URL's (the one the Web UI calls).

    An https URL is a TLS proxy's (this server speaks plain HTTP): then the
    default port, for the proxy to forward to.
    """
    parts = urlsplit(settings.codec_url)
    if parts.scheme == "https":
        return DEFAULT_CODEC_PORT
    if parts.port is not None:
        return parts.port
    return 80 if parts.scheme == "http" else DEFAULT_CODEC_PORT


def sign_in_url(settings: Settings, base_url: str) -> str:
    """Where a browser signs in: at TRANSFER_CODEC_URL's host when served on its port.

    The cookie belongs to the host name the browser signed in at, and the
    Web UI calls TRANSFER_CODEC_URL: both must name the same host.
    """
    if urlsplit(base_url).port == codec_port(settings):
        return f"{settings.codec_url}/login"
    return f"{base_url}/login"


@asynccontextmanager
async def serving_codec(
    settings: Settings,
    ring: KeyRing,
    tokens: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> AsyncIterator[str]:
    """Serve the codec server on this event loop until the block exits; yield its base URL.

    `tokens` are by person (`Settings.codec_tokens`).

    Browsers may call it from the Web UI's origin (TEMPORAL_UI_URL), and
    reach it at TRANSFER_CODEC_URL (its public URL). `port` defaults to
    TRANSFER_CODEC_URL's (8234 if that is https); 0 picks a free one.

    Raises:
        OSError: The port is taken.
    """
    app = codec_app(
        EncryptionCodec(ring),
        tokens=tokens,
        allowed_origins=[origin_of(settings.ui_url)],
        public_url=settings.codec_url,
    )
    runner = web.AppRunner(app, shutdown_timeout=5, access_log_class=CodecAccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, codec_port(settings) if port is None else port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()
