"""The codec server's logs: who decrypted what, and the HTTP access log.

The decode log (logger `DECODE_LOGGER`) has one line per codec call of a
signed-in person or a bearer token's holder: when, who and how, which call,
the namespace and how many payloads, and the outcome; never a payload.

aiohttp's default access log writes the request line (``%r``) as sent, so
``POST /decode?token=...`` would put a token in the log, and it writes header
values between bare double quotes, so a ``"`` in a User-Agent could forge
fields. Here the path is logged without its query, and each header value
the client chose is quoted (its repr, cut to a bounded prefix).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from app.codec_auth import Caller
from ledger.shown import quoted

#: Characters of a header value logged.
MAX_LOGGED_HEADER = 200
#: The logger of the decode log, for routing it to a file or a collector of its own.
DECODE_LOGGER = "app.codec_access"

_decode_log = logging.getLogger(DECODE_LOGGER)


def log_codec_call(
    caller: Caller, *, operation: str, namespace: str | None, payloads: int | None, status: int
) -> None:
    """One line for one call: when (UTC), who, how, which call, namespace, payloads, status.

    Args:
        caller: Who called.
        operation: ``decode`` or ``encode``.
        namespace: The ``X-Namespace`` header (the client's to choose: quoted), if sent.
        payloads: How many payloads the request carried; None if it did not parse.
        status: The HTTP status of the reply.
    """
    _decode_log.info(
        "at=%s person=%s via=%s op=%s namespace=%s payloads=%s status=%d",
        datetime.now(UTC).isoformat(timespec="milliseconds"),
        quoted(caller.person, MAX_LOGGED_HEADER),
        caller.via,
        operation,
        "-" if namespace is None else quoted(namespace, MAX_LOGGED_HEADER),
        "-" if payloads is None else payloads,
        status,
    )


class CodecAccessLogger(AbstractAccessLogger):
    """One line per request: peer, method, quoted path (no query), status, size, headers."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the request's line to the ``aiohttp.access`` logger."""
        self.logger.info(
            "%s %s %s %d %d %.3fs origin=%s referer=%s user-agent=%s",
            request.remote,
            request.method,
            quoted(request.path, MAX_LOGGED_HEADER),
            response.status,
            response.body_length,
            time,
            _header(request, "Origin"),
            _header(request, "Referer", drop_query=True),
            _header(request, "User-Agent"),
        )


def _header(request: BaseRequest, name: str, *, drop_query: bool = False) -> str:
    value = request.headers.get(name)
    if value is None:
        return "-"
    if drop_query:
        # A page's address can carry its own secrets in its query or fragment.
        value = value.split("#", 1)[0].split("?", 1)[0]
    return quoted(value, MAX_LOGGED_HEADER)
