"""The codec server: Temporal's remote codec API, its sign-in, CORS, limits and command."""

import asyncio
import base64
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payload, Payloads

from app.codec_log import CodecAccessLogger
from app.codec_server import SESSION_COOKIE, codec_app, origin_of, serving_codec
from app.config import Settings
from app.encryption import EncryptionCodec
from app.processes import start_process, stop_process
from tests.keys import TEST_KEY_ID, TEST_RING

TOKEN = "test-codec-token-0123456789"
UI_ORIGIN = "http://127.0.0.1:8233"
Client = TestClient[web.Request, web.Application]
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"source_account":"ACC-003"}')


def body(*payloads: Payload) -> dict[str, Any]:
    return MessageToDict(Payloads(payloads=payloads))


def payloads_of(data: dict[str, Any]) -> Sequence[Payload]:
    return ParseDict(data, Payloads()).payloads


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def client_for(**options: Any) -> Client:
    settings: dict[str, Any] = {
        "tokens": {"test": TOKEN},
        "allowed_origins": [UI_ORIGIN],
        "max_body_bytes": 64 * 1024,
        "max_payloads": 10,
    }
    app = codec_app(EncryptionCodec(TEST_RING), **(settings | options))
    client = TestClient(TestServer(app, access_log_class=CodecAccessLogger))
    await client.start_server()
    return client


@pytest.fixture
async def codec() -> AsyncIterator[Client]:
    """A codec server over the test key ring, one token, the UI origin allowed."""
    client = await client_for()
    yield client
    await client.close()


async def encrypted(codec: Client, payload: Payload = PLAIN) -> Payload:
    response = await codec.post("/encode", json=body(payload), headers=bearer())
    assert 200 == response.status
    [sealed] = payloads_of(await response.json())
    return sealed


async def sign_in(codec: Client, token: str = TOKEN) -> aiohttp.ClientResponse:
    return await codec.post("/login", data={"token": token})


async def test_encode_then_decode_with_the_token_round_trips(codec: Client) -> None:
    """/encode seals with the newest key; /decode with the same token gives the payload back."""
    sealed = await encrypted(codec)
    assert b"binary/encrypted" == sealed.metadata["encoding"]
    assert TEST_KEY_ID.encode() == sealed.metadata["encryption-key-id"]
    assert b"ACC-003" not in sealed.data
    response = await codec.post("/decode", json=body(sealed), headers=bearer())
    assert 200 == response.status
    assert [PLAIN] == list(payloads_of(await response.json()))


async def test_an_empty_list_decodes_to_an_empty_list(codec: Client) -> None:
    """No payloads in, ``{"payloads": []}`` out."""
    response = await codec.post("/decode", json={"payloads": []}, headers=bearer())
    assert {"payloads": []} == await response.json()


async def test_plain_payloads_pass_through_decode_unchanged(codec: Client) -> None:
    """A payload that is not marked encrypted comes back as it went in."""
    response = await codec.post("/decode", json=body(PLAIN), headers=bearer())
    assert 200 == response.status
    assert body(PLAIN) == await response.json()


async def test_no_token_is_refused_with_401(codec: Client) -> None:
    """Without a token or a session: 401 with a JSON error saying how to authenticate."""
    sealed = await encrypted(codec)
    response = await codec.post("/decode", json=body(sealed))
    assert 401 == response.status
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "/login" in (await response.json())["error"]


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", "Bearer", f"Basic {TOKEN}", TOKEN],
)
async def test_a_wrong_token_is_refused_with_401_and_not_echoed(
    codec: Client, authorization: str
) -> None:
    """A wrong, truncated, empty or non-Bearer credential gets 401; the reply never quotes it."""
    response = await codec.post(
        "/encode", json=body(PLAIN), headers={"Authorization": authorization}
    )
    assert 401 == response.status
    assert TOKEN[:8] not in await response.text()


async def test_any_configured_token_is_accepted() -> None:
    """With several tokens configured, each one authenticates."""
    client = await client_for(tokens={"alice": "token-of-alice", "ci": "token-of-ci"})
    try:
        for token in ("token-of-alice", "token-of-ci"):
            response = await client.post("/decode", json=body(PLAIN), headers=bearer(token))
            assert 200 == response.status
    finally:
        await client.close()


def test_an_empty_token_is_refused_at_startup() -> None:
    """An empty token would let an empty Bearer in: the app refuses to be built with one."""
    with pytest.raises(ValueError, match="empty"):
        codec_app(EncryptionCodec(TEST_RING), tokens={"x": " "}, allowed_origins=[])


@pytest.mark.parametrize("token", ["a" * 16, "abababababababababab", "0123456"])
def test_a_token_of_few_distinct_characters_is_refused_at_startup(token: str) -> None:
    """`aaaaaaaaaaaaaaaa` is long but guessable: fewer than 8 distinct characters is refused."""
    with pytest.raises(ValueError, match="distinct characters"):
        codec_app(EncryptionCodec(TEST_RING), tokens={"x": token}, allowed_origins=[])


async def test_login_page_is_a_form_asking_for_the_token(codec: Client) -> None:
    """GET /login: an HTML form posting the field `token` back to /login."""
    response = await codec.get("/login")
    assert 200 == response.status
    assert "text/html" == response.content_type
    page = await response.text()
    assert 'action="/login"' in page
    assert "name=token" in page
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_a_wrong_token_at_login_gets_401_and_no_cookie(codec: Client) -> None:
    """POST /login with a wrong token: 401, no Set-Cookie, and /decode still refuses."""
    response = await sign_in(codec, "not-the-token")
    assert 401 == response.status
    assert "Set-Cookie" not in response.headers
    assert "not valid" in await response.text()
    assert 0 == len(codec.session.cookie_jar)
    decoded = await codec.post("/decode", json=body(await encrypted(codec)))
    assert 401 == decoded.status


async def test_signing_in_sets_a_session_cookie_that_decodes_alone(codec: Client) -> None:
    """POST /login with the token: an HttpOnly, SameSite=Lax cookie; /decode then needs no token."""
    sealed = await encrypted(codec)
    response = await sign_in(codec)
    assert 200 == response.status
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"]
    assert "Lax" == cookie["samesite"]
    assert "/" == cookie["path"]
    assert 8 * 3600 == int(cookie["max-age"])
    assert TOKEN not in cookie.value
    decoded = await codec.post("/decode", json=body(sealed))
    assert 200 == decoded.status
    assert [PLAIN] == list(payloads_of(await decoded.json()))
    assert "Signed in" in await (await codec.get("/login")).text()


async def test_a_wrong_bearer_token_is_refused_even_with_a_session(codec: Client) -> None:
    """An Authorization header decides on its own: wrong token, 401, cookie or not."""
    await sign_in(codec)
    response = await codec.post("/decode", json=body(PLAIN), headers=bearer("wrong"))
    assert 401 == response.status


async def test_a_forged_session_cookie_is_refused(codec: Client) -> None:
    """A cookie value the server never issued authenticates nobody."""
    response = await codec.post(
        "/decode", json=body(PLAIN), headers={"Cookie": f"{SESSION_COOKIE}=made-up"}
    )
    assert 401 == response.status


async def test_signing_out_ends_the_session(codec: Client) -> None:
    """POST /logout forgets the session: its cookie no longer decodes, even if replayed."""
    session_id = (await sign_in(codec)).cookies[SESSION_COOKIE].value
    await codec.post("/logout")
    response = await codec.post(
        "/decode", json=body(PLAIN), headers={"Cookie": f"{SESSION_COOKIE}={session_id}"}
    )
    assert 401 == response.status


async def test_an_expired_session_is_refused() -> None:
    """A session past its lifetime no longer decodes."""
    client = await client_for(session_ttl=timedelta(0))
    try:
        session_id = (await sign_in(client)).cookies[SESSION_COOKIE].value
        response = await client.post(
            "/decode", json=body(PLAIN), headers={"Cookie": f"{SESSION_COOKIE}={session_id}"}
        )
        assert 401 == response.status
    finally:
        await client.close()


async def test_tokens_never_reach_the_log(codec: Client, caplog: pytest.LogCaptureFixture) -> None:
    """Sign-ins and calls, right or wrong, log the token's name, never a token."""
    with caplog.at_level(logging.DEBUG):
        await sign_in(codec, "wrong-token-value")
        await sign_in(codec)
        await codec.post("/decode", json=body(PLAIN), headers=bearer())
        await codec.post("/decode", json=body(PLAIN), headers=bearer("wrong-token-value"))
    assert "signed in as 'test'" in caplog.text
    assert TOKEN not in caplog.text
    assert "wrong-token-value" not in caplog.text


async def test_a_refused_request_cannot_forge_log_lines(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A foreign origin's path is logged quoted (its repr): no newline reaches the log."""
    with caplog.at_level(logging.DEBUG):
        response = await codec.post(
            "/x%0a2026-01-01 INFO app.codec_server: decode 500 payloads for bearer token 'ci'",
            headers={"Origin": "http://evil.example"},
        )
    assert 403 == response.status
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert 1 == len(refused)
    assert "\n" not in refused[0]
    assert "/x\\n2026-01-01" in refused[0]


async def test_preflight_from_the_ui_origin_allows_credentials(codec: Client) -> None:
    """OPTIONS from the UI: 204, that exact origin, POST, the UI's headers, credentials."""
    response = await codec.options(
        "/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert 204 == response.status
    assert UI_ORIGIN == response.headers["Access-Control-Allow-Origin"]
    assert "POST" == response.headers["Access-Control-Allow-Methods"]
    assert (
        "Content-Type, X-Namespace, Authorization"
        == response.headers["Access-Control-Allow-Headers"]
    )
    assert "true" == response.headers["Access-Control-Allow-Credentials"]
    assert "Origin" in response.headers["Vary"]


async def test_a_call_from_the_ui_origin_carries_cors_headers(codec: Client) -> None:
    """POST /decode from the UI: the response names that exact origin, never `*`."""
    response = await codec.post(
        "/decode", json=body(PLAIN), headers=bearer() | {"Origin": UI_ORIGIN}
    )
    assert 200 == response.status
    assert UI_ORIGIN == response.headers["Access-Control-Allow-Origin"]
    assert "true" == response.headers["Access-Control-Allow-Credentials"]


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "http://localhost:8233", "http://127.0.0.1:9999", "null"],
)
async def test_other_origins_get_403_and_no_cors_headers(codec: Client, origin: str) -> None:
    """Preflight and call from any other origin (even with the token): 403, no CORS headers."""
    preflight = await codec.options(
        "/decode", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    call = await codec.post("/decode", json=body(PLAIN), headers=bearer() | {"Origin": origin})
    login = await codec.post("/login", data={"token": TOKEN}, headers={"Origin": origin})
    for response in (preflight, call, login):
        assert 403 == response.status
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Set-Cookie" not in response.headers


async def test_the_sign_in_form_posts_from_its_own_origin(codec: Client) -> None:
    """The login form's own POST (Origin: the codec server) is accepted."""
    own = f"http://{codec.host}:{codec.port}"
    response = await codec.post("/login", data={"token": TOKEN}, headers={"Origin": own})
    assert 200 == response.status
    assert SESSION_COOKIE in response.cookies


async def test_an_oversized_body_gets_413(codec: Client) -> None:
    """A body over max_body_bytes: 413 with a JSON error, before any decoding."""
    big = Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * 70 * 1024)
    response = await codec.post("/decode", json=body(big), headers=bearer())
    assert 413 == response.status
    assert "bytes" in (await response.json())["error"]


async def test_an_oversized_chunked_body_gets_413(codec: Client) -> None:
    """Without a Content-Length the limit holds while reading: 413."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"payloads": [{"data": "'
        for _ in range(100):
            yield b"A" * 1024
        yield b'"}]}'

    response = await codec.post("/decode", data=chunks(), headers=bearer())
    assert 413 == response.status
    assert "bytes" in (await response.json())["error"]


async def test_too_many_payloads_get_413(codec: Client) -> None:
    """More payloads than max_payloads in one request: 413 naming the limit."""
    response = await codec.post("/decode", json=body(*[PLAIN] * 11), headers=bearer())
    assert 413 == response.status
    assert "at most 10" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),
        (b"[]", "payloads"),
        (b'{"payloads": "nope"}', "payloads"),
        (b'{"payloads": [{"data": "not base64!"}]}', "Payloads JSON"),
        (b'{"payloads": [{"metadata": {"encoding": 5}}]}', "Payloads JSON"),
        (b'{"payloads": [7]}', "Payloads JSON"),
    ],
)
async def test_malformed_bodies_get_400_saying_why(codec: Client, data: bytes, says: str) -> None:
    """Bad JSON or the wrong shape: 400 with a message, never a 500."""
    response = await codec.post(
        "/decode", data=data, headers=bearer() | {"Content-Type": "application/json"}
    )
    assert 400 == response.status
    assert says in (await response.json())["error"]


async def test_a_payload_under_an_unknown_key_gets_422_naming_the_key() -> None:
    """Encrypted under a key the server does not hold: 422 naming that key id."""
    other = EncryptionCodec(TEST_RING.with_new_key("rotated-away"))
    [sealed] = await other.encode([PLAIN])
    client = await client_for()
    try:
        response = await client.post("/decode", json=body(sealed), headers=bearer())
        assert 422 == response.status
        error = (await response.json())["error"]
        assert "'rotated-away'" in error
        assert TEST_KEY_ID in error  # and which keys it holds
    finally:
        await client.close()


async def test_an_altered_payload_gets_422_naming_the_key(codec: Client) -> None:
    """A payload whose ciphertext changed: 422 naming the key id, no garbage data."""
    sealed = await encrypted(codec)
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    response = await codec.post("/decode", json=body(sealed), headers=bearer())
    assert 422 == response.status
    assert f"'{TEST_KEY_ID}'" in (await response.json())["error"]


async def test_health_answers_without_auth(codec: Client) -> None:
    """GET /health: 200, no token needed, nothing secret in it."""
    response = await codec.get("/health")
    assert 200 == response.status
    assert {"status": "ok"} == await response.json()


def test_origin_of_spells_origins_as_browsers_do() -> None:
    """Lower case, no path, default ports dropped."""
    assert "http://localhost:8233" == origin_of("http://LocalHost:8233/namespaces/default")
    assert "https://ui.example" == origin_of("https://ui.example:443/")
    assert "http://[::1]:8233" == origin_of("http://[::1]:8233")


async def test_serving_codec_serves_on_a_port_and_refuses_a_taken_one() -> None:
    """serving_codec yields a URL that answers; a second one on the same port raises OSError."""
    settings = Settings(
        ledger_url="", task_queue="", ui_url=UI_ORIGIN, codec_url="http://127.0.0.1:8234"
    )
    async with serving_codec(settings, TEST_RING, {"test": TOKEN}, port=0) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/health") as response:
                assert 200 == response.status
            async with session.post(
                f"{url}/decode", json=body(PLAIN), headers=bearer() | {"Origin": UI_ORIGIN}
            ) as response:
                assert 200 == response.status
                assert UI_ORIGIN == response.headers["Access-Control-Allow-Origin"]
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            async with serving_codec(settings, TEST_RING, {"test": TOKEN}, port=port):
                pass


def test_payload_json_is_base64() -> None:
    """The wire shape is proto JSON: metadata values and data in base64."""
    assert {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(PLAIN.data).decode(),
            }
        ]
    } == body(PLAIN)


ROOT = Path(__file__).resolve().parents[2]


def starter_env(data_dir: Path, **env: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_CODEC_TOKEN")}
    return environment | {"TRANSFER_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"} | env


async def run_starter(*args: str, data_dir: Path, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "starter.py",
        *args,
        cwd=ROOT,
        env=starter_env(data_dir, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_codec_server_command_serves_until_sigint(tmp_path: Path) -> None:
    """`starter.py codec-server --new-token`: makes an owner-only token, serves, stops on SIGINT."""
    log = tmp_path / "codec-server.log"
    process = await start_process(
        [sys.executable, "starter.py", "codec-server", "--port", "0", "--new-token"],
        log=log,
        ready="Ctrl-C to stop",
        env=starter_env(tmp_path),
        cwd=ROOT,
        ready_within=30,
    )
    printed = log.read_text()
    token_file = tmp_path / "codec-token"
    token = token_file.read_text().strip()
    assert 0o600 == token_file.stat().st_mode & 0o777
    assert f"Created a new codec token in {token_file}" in printed
    assert token not in printed
    found = re.search(r"listening on (http://\S+)", printed)
    assert found is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{found[1]}/health") as response:
            assert 200 == response.status
        async with session.post(
            f"{found[1]}/decode", json=body(PLAIN), headers=bearer(token)
        ) as response:
            assert 200 == response.status
    assert 0 == await stop_process(process, stop_signal=signal.SIGINT)
    assert "Received SIGINT" in log.read_text()[len(printed) :]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TRANSFER_ENCRYPTION": "off"}, "TRANSFER_ENCRYPTION=off"),
        ({}, "--new-token"),  # no token configured, and not asked to make one
        ({"TRANSFER_CODEC_TOKEN": "letmein"}, "7 characters; use a random one of at least 16"),
        ({"TRANSFER_CODEC_TOKEN": "a" * 16}, "1 distinct characters"),
    ],
)
async def test_codec_server_command_refuses_without_keys_or_token(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    """Encryption off, or no token or a weak one: exit 2 with one line saying what to do."""
    process = await run_starter("codec-server", "--port", "0", data_dir=tmp_path, **env)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert 2 == process.returncode
    assert says in err.decode()
    assert "Traceback" not in err.decode()


async def test_codec_server_command_says_when_its_port_is_taken(tmp_path: Path) -> None:
    """Another process on the port: exit 3 naming the address, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await run_starter(
            "codec-server", "--port", str(port), data_dir=tmp_path, TRANSFER_CODEC_TOKEN=TOKEN
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert 3 == process.returncode
    assert f"Cannot listen on 127.0.0.1:{port}" in err.decode()
    assert "Traceback" not in err.decode()


PUBLIC_URL = "https://codec.example.com"


async def test_behind_a_tls_proxy_sign_in_at_the_public_url_gets_a_secure_cookie() -> None:
    """public_url https://...: POST /login from that origin (HTTP behind the proxy) signs in."""
    client = await client_for(public_url=PUBLIC_URL)
    try:
        response = await client.post(
            "/login", data={"token": TOKEN}, headers={"Origin": PUBLIC_URL}
        )
        assert 200 == response.status
        assert response.cookies[SESSION_COOKIE]["secure"]
        assert PUBLIC_URL in await response.text()  # the endpoint to enter in the Web UI
    finally:
        await client.close()


async def test_an_http_public_url_on_another_port_leaves_the_endpoint_shown_as_served() -> None:
    """Served with --port elsewhere than an http TRANSFER_CODEC_URL: the page names where it is."""
    client = await client_for(public_url="http://localhost:8234")
    try:
        response = await sign_in(client)
        assert f"http://{client.host}:{client.port}" in await response.text()
        assert not response.cookies[SESSION_COOKIE]["secure"]
    finally:
        await client.close()


async def test_without_a_public_url_the_cookie_is_not_secure(codec: Client) -> None:
    """Plain HTTP and no https public URL: the cookie is not Secure (it would be dropped)."""
    response = await sign_in(codec)
    assert not response.cookies[SESSION_COOKIE]["secure"]


def test_an_https_codec_url_is_a_proxys_so_the_server_listens_on_8234() -> None:
    """TRANSFER_CODEC_URL=https://...: listen on 8234 by default; sign in at the public URL."""
    from app.codec_server import codec_port, sign_in_url

    settings = Settings(ledger_url="", task_queue="", ui_url=UI_ORIGIN, codec_url=PUBLIC_URL)
    assert 8234 == codec_port(settings)
    assert f"{PUBLIC_URL}/login" == sign_in_url(settings, "http://127.0.0.1:8234")


async def test_the_access_log_has_no_query_string_and_quotes_header_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token in the query never reaches the access log; a quote in User-Agent forges no field."""
    settings = Settings(ledger_url="", task_queue="", ui_url=UI_ORIGIN, codec_url="http://x:1")
    forged = 'curl" 200 "admin'
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with (
            serving_codec(settings, TEST_RING, {"test": TOKEN}, port=0) as url,
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/decode?token={TOKEN}",
                json=body(PLAIN),
                headers={"User-Agent": forged, "Referer": f"{UI_ORIGIN}/x?token={TOKEN}"},
            ) as response,
        ):
            assert 401 == response.status
    [line] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert TOKEN not in line
    assert "POST '/decode' 401" in line
    assert f"user-agent={forged!r}" in line
    assert f"referer={UI_ORIGIN + '/x'!r}" in line


async def test_a_refused_origins_warning_leaves_out_the_query(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The 403 warning for a foreign origin logs the path without `?token=...`."""
    with caplog.at_level(logging.DEBUG):
        response = await codec.post(
            f"/decode?token={TOKEN}", json=body(PLAIN), headers={"Origin": "http://evil.example"}
        )
    assert 403 == response.status
    [warning] = [r.getMessage() for r in caplog.records if r.name == "app.codec_server"]
    assert "refused POST '/decode' from origin 'http://evil.example'" == warning


async def test_a_5000_digit_number_in_the_body_gets_400_not_500(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Python's integer-digit limit raises ValueError, not JSONDecodeError: still a 400."""
    data = b'{"payloads": [], "x": ' + b"9" * 5000 + b"}"
    with caplog.at_level(logging.DEBUG):
        response = await codec.post(
            "/decode", data=data, headers=bearer() | {"Content-Type": "application/json"}
        )
    assert 400 == response.status
    assert "not JSON" in (await response.json())["error"]
    assert "Traceback" not in caplog.text


async def test_a_long_key_id_is_cut_short_in_the_422_and_the_log(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A 700-character key id (within the metadata bound) is echoed as a prefix only."""
    sealed = await encrypted(codec)
    sealed.metadata["encryption-key-id"] = b"k" * 700
    with caplog.at_level(logging.DEBUG):
        response = await codec.post("/decode", json=body(sealed), headers=bearer())
    assert 422 == response.status
    error = (await response.json())["error"]
    assert "(700 characters)" in error
    assert "k" * 41 not in error
    assert "k" * 41 not in caplog.text


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({f"k{n}": "" for n in range(200_000)}, "200,000 metadata entries; at most 16"),
        (
            {"encryption-key-id": "a" * 1_000_000},
            "metadata 'encryption-key-id' is 1,000,000 characters of base64; at most 1024",
        ),
        ({"n" * 1000: ""}, "a metadata name of 1,000 characters; at most 64"),
    ],
    ids=["many-entries", "megabyte-key-id", "long-name"],
)
async def test_payload_metadata_is_bounded(metadata: dict[str, str], says: str) -> None:
    """Too many metadata entries, or a huge one: 413 saying so, before anything parses them."""
    client = await client_for(max_body_bytes=4 * 1024 * 1024)
    try:
        data = {"payloads": [{"metadata": metadata, "data": ""}]}
        response = await client.post("/decode", json=data, headers=bearer())
        assert 413 == response.status
        error = (await response.json())["error"]
        assert f"payload 0: {says}" == error
    finally:
        await client.close()
