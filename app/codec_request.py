"""Reading a codec request's payloads, within bounds: what a caller may make the server parse.

Every refusal is a 400 or 413 whose message says what is wrong, quoting at
most a short prefix of what was sent; nothing a caller sends reaches a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from google.protobuf.json_format import ParseDict, ParseError
from temporalio.api.common.v1 import Payloads

from ledger.shown import clipped

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_PAYLOADS = 1000
#: A Temporal payload's metadata is a few short entries (``encoding``, our
#: cipher and key id); parsing 200,000 of them took over a second.
MAX_METADATA_ENTRIES = 16
#: Characters of an entry's name, and of its value (base64 in the JSON).
MAX_METADATA_NAME = 64
MAX_METADATA_VALUE = 1024
#: Characters of a parser's message quoted back (it may quote the input).
_MAX_ERROR = 200

_SHAPE = 'body must be {"payloads": [{"metadata": {...}, "data": "..."}]}'


def error(status: int, message: str, **headers: str) -> web.Response:
    """A JSON error reply: ``{"error": message}``."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def read_payloads(
    request: web.Request,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_payloads: int = DEFAULT_MAX_PAYLOADS,
) -> Payloads | web.Response:
    """The request's Payloads, or the 400/413 response that says what is wrong with it."""
    too_large = f"request body over {max_body_bytes} bytes: send fewer payloads per request"
    if request.content_length is not None and request.content_length > max_body_bytes:
        return error(413, too_large)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, too_large)
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, RecursionError, ValueError) as err:
        # ValueError: JSONDecodeError, and Python's limit on the digits of an
        # integer ({"x": <5000 digits>}), which is no JSONDecodeError.
        return error(400, f"body is not JSON: {clipped(str(err), _MAX_ERROR)}")
    if not isinstance(body, dict) or not isinstance(body.get("payloads", []), list):
        return error(400, _SHAPE)
    payloads: list[Any] = body.get("payloads", [])
    if len(payloads) > max_payloads:
        return error(413, f"{len(payloads)} payloads in one request; at most {max_payloads}")
    for number, payload in enumerate(payloads):
        refused = _metadata_refusal(payload.get("metadata") if isinstance(payload, dict) else {})
        if refused:
            return error(413, f"payload {number}: {refused}")
    try:
        return ParseDict(body, Payloads(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, RecursionError) as err:
        return error(
            400,
            "body is not temporal.api.common.v1.Payloads JSON: " + clipped(str(err), _MAX_ERROR),
        )


def _metadata_refusal(metadata: object) -> str | None:
    """Why a payload's metadata is refused (too many or too long entries), or None."""
    if not isinstance(metadata, dict):
        return None  # ParseDict says what is wrong with it
    if len(metadata) > MAX_METADATA_ENTRIES:
        return f"{len(metadata):,} metadata entries; at most {MAX_METADATA_ENTRIES}"
    for name, value in metadata.items():
        if len(name) > MAX_METADATA_NAME:
            return f"a metadata name of {len(name):,} characters; at most {MAX_METADATA_NAME}"
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE:
            return (
                f"metadata {name!r} is {len(value):,} characters of base64; "
                f"at most {MAX_METADATA_VALUE}"
            )
    return None
