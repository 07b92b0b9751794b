"""The codec server's access log: no query strings, every client-sent value quoted.

aiohttp's default access log writes the request line (``%r``) as sent, so
``POST /decode?token=...`` would put a token in the log, and it writes header
values between bare double quotes, so a ``"`` in a User-Agent could forge
fields. Here the path is logged without its query, and each header value
the client chose is quoted (its repr, cut to a bounded prefix).
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from ledger.shown import quoted

#: Characters of a header value logged.
MAX_LOGGED_HEADER = 200


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
