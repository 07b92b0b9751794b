"""Who may use the codec server: bearer tokens, checked in constant time, and browser sessions.

Each token belongs to a person (app/codec_tokens.py); a browser signs in as
the person whose token it gave, and every call is told apart by that name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta

from aiohttp import web

from app.codec_tokens import MIN_DISTINCT_CHARACTERS

DEFAULT_SESSION_TTL = timedelta(hours=8)
SESSION_COOKIE = "codec_session"
#: Sessions kept at most; the oldest go first (each needs a valid token to make).
MAX_SESSIONS = 10_000


@dataclasses.dataclass(frozen=True)
class Session:
    """A signed-in browser: the person whose token it signed in with, and until when."""

    person: str
    expires: float  # time.monotonic()


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who a codec call comes from: a person, and how they proved it."""

    person: str
    #: ``bearer`` (an Authorization header) or ``session`` (a signed-in browser).
    via: str


class Sessions:
    """Signed-in browsers, in memory: a restart signs everyone out.

    Keyed by the SHA-256 of the cookie value, so the dict lookup's timing says
    nothing about the session ids held.
    """

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self._held: dict[bytes, Session] = {}

    def start(self, person: str) -> str:
        """Sign a browser in as `person`; the new session id for its cookie."""
        now = time.monotonic()
        self._held = {k: s for k, s in self._held.items() if s.expires > now}
        while len(self._held) >= MAX_SESSIONS:
            del self._held[next(iter(self._held))]
        session_id = secrets.token_urlsafe(32)
        self._held[_digest(session_id)] = Session(person, now + self.ttl.total_seconds())
        return session_id

    def find(self, session_id: str | None) -> Session | None:
        """The live session a cookie names, or None (an expired one is dropped)."""
        if not session_id:
            return None
        key = _digest(session_id)
        session = self._held.get(key)
        if session is None:
            return None
        if session.expires <= time.monotonic():
            del self._held[key]
            return None
        return session

    def end(self, session_id: str | None) -> None:
        """Sign a browser out."""
        if session_id:
            self._held.pop(_digest(session_id), None)


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()


class TokenCheck:
    """Constant-time checks of presented tokens against every person's."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not tokens:
            raise ValueError("the codec server needs at least one token")
        if any(not token.strip() for token in tokens.values()):
            raise ValueError("a codec server token must not be empty")
        for name, token in tokens.items():
            if len(set(token)) < MIN_DISTINCT_CHARACTERS:
                raise ValueError(
                    f"codec token {name!r} has {len(set(token))} distinct characters; a random "
                    f"one has many more (`codec-server --new-token` makes one): use at least "
                    f"{MIN_DISTINCT_CHARACTERS}"
                )
        if len(set(tokens.values())) != len(tokens):
            raise ValueError("two people share one codec token: the log could not say who")
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]
        #: The people who hold a token.
        self.people = frozenset(tokens)

    def person(self, presented: str) -> str | None:
        """The person whose token `presented` is, or None (compared with every token, in full)."""
        given = presented.encode("utf-8", "replace")
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(given, token) and given:
                found = name
        return found


def authenticate(request: web.Request, auth: TokenCheck, sessions: Sessions) -> Caller | None:
    """Who is calling, or None.

    An Authorization header decides on its own, so a wrong token is refused
    even from a signed-in browser. A session counts only while its person
    still holds a token: one removed from the tokens is signed out.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        person = auth.person(presented.strip())
        return Caller(person, "bearer") if person else None
    session = sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None or session.person not in auth.people:
        return None
    return Caller(session.person, "session")
