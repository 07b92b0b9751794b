"""The codec server's sign-in pages: plain HTML under a strict Content-Security-Policy."""

from __future__ import annotations

import html

from aiohttp import web

from app.config import CODEC_TOKEN_FILE_NAME


def page(body: str, *, status: int = 200) -> web.Response:
    """An HTML page around `body`, with headers that allow no script, frame or foreign form."""
    return web.Response(
        text=f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Codec server sign-in</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n",
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


_STYLE = (
    "body{font-family:sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "input[type=password]{width:100%;padding:.4rem;margin:.5rem 0}"
    "p.status{font-weight:bold}"
)


def login_html(status: str) -> str:
    """The sign-in form, with a status line (escaped) if there is one."""
    shown = f"<p class=status role=status>{html.escape(status)}</p>" if status else ""
    return (
        "<h1>Sign in to the codec server</h1>"
        f"{shown}"
        "<p>Paste your codec token (the one given to you in <code>TRANSFER_CODEC_TOKENS</code> "
        "or its file; in a single-token setup <code>TRANSFER_CODEC_TOKEN</code>, else the file "
        f"<code>{CODEC_TOKEN_FILE_NAME}</code> in the data directory, <code>.data/</code> by "
        "default) to let this browser decrypt payloads in the Temporal Web UI. Each decode "
        "is logged under your name.</p>"
        '<form method=post action="/login">'
        "<label for=token>Codec token</label>"
        "<input id=token name=token type=password autocomplete=off required autofocus>"
        "<button type=submit>Sign in</button></form>"
    )


def signed_in_html(endpoint: str, origins: frozenset[str], person: str) -> str:
    """Who is signed in, and what to set in the Web UI: the endpoint, and credentials on."""
    ui = sorted(origins)
    link = f' Open the <a href="{html.escape(ui[0])}">Web UI</a>.' if ui else ""
    return (
        "<h1>Signed in</h1>"
        "<p class=status role=status>This browser is signed in to the codec server as "
        f"<b>{html.escape(person)}</b>.</p>"
        "<p>In the Web UI, open the <b>Codec Server</b> settings (the icon in the top bar), "
        "choose <b>Use my browser setting</b>, enter the endpoint "
        f"<code>{html.escape(endpoint)}</code>, turn on <b>Include cross-origin "
        "credentials</b> and apply: the UI then sends this sign-in with its decode "
        f"requests.{link}</p>"
        '<form method=post action="/logout"><button type=submit>Sign out</button></form>'
    )
