"""What may be shown of untrusted or secret text: bounded prefixes and redacted URLs.

Messages, logs and reports quote what they were given so a person can see
what was wrong, but an input can be a megabyte long, and a database URL can
carry a password. Everything that echoes input or shows a URL goes through
these functions (the ledger uses them, so they live here; the app imports
them too).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

#: How many characters of an input a message quotes.
ECHO_LIMIT = 40

#: What stands for a secret in a shown URL.
REDACTED = "***"

#: Query parameters that carry a secret: libpq's ``password`` and
#: ``sslpassword``, and any name with "password", "secret" or "token" in it.
#: File paths such as ``sslkey`` or ``passfile`` say where a secret is, not
#: what it is, and stay visible.
_SECRET_WORDS = ("password", "secret", "token")


def quoted(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` quoted (its repr), cut to its first `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def clipped(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` unquoted (a number, say), cut to its first `limit` characters if longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def redact_url(url: str) -> str:
    """A URL as it may be shown or logged: no user name, password or secret parameter.

    ``postgresql://alice:pw@db:5432/ledger?sslpassword=x&schema=s`` becomes
    ``postgresql://***@db:5432/ledger?sslpassword=***&schema=s``. Text that is
    not a URL (a file path, a ``key=value`` connection string) keeps
    everything but the values of secret keys.
    """
    parts = urlsplit(url)
    if not parts.scheme or (not parts.netloc and not parts.query):
        return _SECRET_PAIR.sub(lambda m: f"{m[1]}={REDACTED}", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    shown = [(k, REDACTED if _is_secret(k) else v) for k, v in query]
    query_text = urlencode(shown, safe="*{}/:,")
    # Spelt out: urlunsplit drops the "//" of an empty host (postgresql:///db).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query_text}" if query_text else "")


def _is_secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


#: ``password=...`` in a keyword connection string (``host=db password='a b'``).
_SECRET_PAIR = re.compile(
    r"""([A-Za-z_]*(?:password|secret|token)[A-Za-z_]*)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)""",
    re.IGNORECASE,
)
