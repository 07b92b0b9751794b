"""Per-person codec access: named tokens, sessions that name their person, the decode log."""

import asyncio
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from app.codec_auth import SESSION_COOKIE, Caller, Sessions, TokenCheck, authenticate
from app.codec_log import DECODE_LOGGER
from app.codec_tokens import SHARED_PERSON
from app.config import ConfigError, Settings
from app.encryption import EncryptionCodec
from app.processes import start_process, stop_process
from tests.keys import TEST_RING
from tests.unit.test_codec_server import (
    PLAIN,
    ROOT,
    Client,
    bearer,
    body,
    client_for,
    starter_env,
)

ALICE = "alices-codec-token-0123456789"
BOB = "bobs-own-codec-token-9876543210"
PEOPLE = {"alice": ALICE, "bob": BOB}


def tokens_of(tmp_path: Path, **env: str) -> dict[str, str]:
    return Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path), **env}).codec_tokens()


def tokens_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "codec-tokens"
    path.write_text(text)
    path.chmod(mode)
    return path


# -- the tokens ------------------------------------------------------------------------


def test_named_tokens_come_from_the_environment(tmp_path: Path) -> None:
    """`TRANSFER_CODEC_TOKENS=name:token,...`: each person's token; spaces around are ignored."""
    assert PEOPLE == tokens_of(tmp_path, TRANSFER_CODEC_TOKENS=f" alice:{ALICE} , bob : {BOB} ")


def test_named_tokens_come_from_an_owner_only_file(tmp_path: Path) -> None:
    """A tokens file: one `name:token` a line; comments and blank lines skipped."""
    path = tokens_file(
        tmp_path, f"# the on-call team\nalice:{ALICE}\n\n  # bob since May\nbob:{BOB}\n"
    )
    assert PEOPLE == tokens_of(tmp_path, TRANSFER_CODEC_TOKENS_FILE=str(path))


def test_a_tokens_file_others_can_read_is_refused(tmp_path: Path) -> None:
    """The key file's rules: group- or world-readable is refused with the fix."""
    path = tokens_file(tmp_path, f"alice:{ALICE}\n", mode=0o644)
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        tokens_of(tmp_path, TRANSFER_CODEC_TOKENS_FILE=str(path))


def test_the_single_shared_token_still_works_as_the_default_person(tmp_path: Path) -> None:
    """TRANSFER_CODEC_TOKEN alone: one token, held by `default`."""
    assert {SHARED_PERSON: ALICE} == tokens_of(tmp_path, TRANSFER_CODEC_TOKEN=ALICE)


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        (f"alice:{ALICE},{BOB}", "entry 2 of TRANSFER_CODEC_TOKENS is not name:token"),
        (f"alice:{ALICE},:{BOB}", "entry 2 of TRANSFER_CODEC_TOKENS is not name:token"),
        (f"alice:{ALICE},bob:", "entry 2 of TRANSFER_CODEC_TOKENS is not name:token"),
        (f"al ice:{ALICE}", "entry 1 of TRANSFER_CODEC_TOKENS: a name is 1 to 64 letters"),
        (f"{'a' * 65}:{ALICE}", "entry 1 of TRANSFER_CODEC_TOKENS: a name is 1 to 64 letters"),
        (f"alice:{ALICE},alice:{BOB}", "names 'alice' twice (entry 2 is the second)"),
        (f"alice:{ALICE},bob:{ALICE}", "gives 'bob' the same token as 'alice'"),
        ("alice:short-token", "for 'alice' is 11 characters; use a random one of at least 16"),
        ("alice:abababababababab", "for 'alice' has 2 distinct characters"),
        (",", "entry 1 of TRANSFER_CODEC_TOKENS is not name:token"),
    ],
)
def test_bad_named_tokens_are_refused_in_one_line_that_shows_no_token(
    tmp_path: Path, entries: str, says: str
) -> None:
    """Malformed, weak, duplicated or shared tokens: one line naming the entry, never a token."""
    with pytest.raises(ConfigError) as refused:
        tokens_of(tmp_path, TRANSFER_CODEC_TOKENS=entries)
    message = str(refused.value)
    assert says in message
    assert "\n" not in message
    for secret in (ALICE, BOB, "short-token", "abababababababab"):
        assert secret not in message


def test_tokens_set_two_ways_are_refused(tmp_path: Path) -> None:
    """The shared token beside named ones is ambiguous: say which are set."""
    with pytest.raises(ConfigError) as refused:
        tokens_of(tmp_path, TRANSFER_CODEC_TOKEN=BOB, TRANSFER_CODEC_TOKENS=f"alice:{ALICE}")
    assert "TRANSFER_CODEC_TOKEN and TRANSFER_CODEC_TOKENS are both set: set one of them" == str(
        refused.value
    )


def test_the_server_refuses_two_people_sharing_a_token() -> None:
    """codec_app's own check, whatever built the mapping: the log could not say who."""
    with pytest.raises(ValueError, match="two people share one codec token"):
        TokenCheck({"alice": ALICE, "bob": ALICE})


# -- who is signed in, and the decode log -------------------------------------------------


@pytest.fixture
async def codec() -> AsyncIterator[Client]:
    """A codec server whose tokens are Alice's and Bob's."""
    client = await client_for(tokens=PEOPLE)
    yield client
    await client.close()


async def test_a_browser_is_signed_in_as_the_person_whose_token_it_gave(codec: Client) -> None:
    """Bob's token at /login: the page and the session name Bob."""
    response = await codec.post("/login", data={"token": BOB})
    assert 200 == response.status
    assert "signed in to the codec server as <b>bob</b>" in await response.text()
    assert "as <b>bob</b>" in await (await codec.get("/login")).text()


def decode_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == DECODE_LOGGER]


async def test_each_decode_is_logged_with_who_when_namespace_and_count(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """One line per call: UTC time, person, session or bearer, namespace, payloads; no payload."""
    [sealed] = await EncryptionCodec(TEST_RING).encode([PLAIN])
    await codec.post("/login", data={"token": BOB})
    with caplog.at_level(logging.INFO, logger=DECODE_LOGGER):
        by_session = await codec.post(
            "/decode", json=body(sealed, sealed), headers={"X-Namespace": "payments"}
        )
        by_bearer = await codec.post("/decode", json=body(sealed), headers=bearer(ALICE))
    assert (200, 200) == (by_session.status, by_bearer.status)
    stamp = r"at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
    session_line, bearer_line = decode_lines(caplog)
    assert re.fullmatch(
        stamp + r" person='bob' via=session op=decode namespace='payments' payloads=2 status=200",
        session_line,
    ), session_line
    assert re.fullmatch(
        stamp + r" person='alice' via=bearer op=decode namespace=- payloads=1 status=200",
        bearer_line,
    ), bearer_line
    assert "ACC-003" not in caplog.text
    assert ALICE not in caplog.text
    assert BOB not in caplog.text


async def test_a_decode_that_fails_is_logged_too(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed body and an undecryptable payload each leave their line, with their status."""
    [sealed] = await EncryptionCodec(TEST_RING).encode([PLAIN])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with caplog.at_level(logging.INFO, logger=DECODE_LOGGER):
        await codec.post("/decode", data=b"not json", headers=bearer(BOB))
        await codec.post("/decode", json=body(sealed), headers=bearer(BOB))
    lines = decode_lines(caplog)
    assert ["payloads=- status=400", "payloads=1 status=422"] == [
        line.split("namespace=- ")[1] for line in lines
    ]


async def test_a_refused_caller_leaves_no_decode_line(
    codec: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """No token, no line: the decode log lists what people decrypted (the HTTP log has the 401)."""
    with caplog.at_level(logging.INFO, logger=DECODE_LOGGER):
        assert 401 == (await codec.post("/decode", json=body(PLAIN))).status
    assert [] == decode_lines(caplog)


async def test_a_removed_person_is_locked_out_after_a_restart() -> None:
    """Bob removed from the tokens and the server restarted: his session and token are refused."""
    before = await client_for(tokens=PEOPLE)
    try:
        session_id = (await before.post("/login", data={"token": BOB})).cookies[SESSION_COOKIE]
        cookie = {"Cookie": f"{SESSION_COOKIE}={session_id.value}"}
        assert 200 == (await before.post("/decode", json=body(PLAIN), headers=cookie)).status
    finally:
        await before.close()
    after = await client_for(tokens={"alice": ALICE})
    try:
        assert 401 == (await after.post("/decode", json=body(PLAIN), headers=cookie)).status
        assert 401 == (await after.post("/decode", json=body(PLAIN), headers=bearer(BOB))).status
        assert 401 == (await after.post("/login", data={"token": BOB})).status
        assert 200 == (await after.post("/decode", json=body(PLAIN), headers=bearer(ALICE))).status
    finally:
        await after.close()


def test_a_session_counts_only_while_its_person_holds_a_token() -> None:
    """A session made for someone the server no longer knows authenticates nobody."""
    sessions = Sessions(timedelta(hours=1))
    bobs = sessions.start("bob")
    request = make_mocked_request("POST", "/decode", headers={"Cookie": f"{SESSION_COOKIE}={bobs}"})
    assert Caller("bob", "session") == authenticate(request, TokenCheck(PEOPLE), sessions)
    assert None is authenticate(request, TokenCheck({"alice": ALICE}), sessions)


async def test_codec_server_command_serves_each_person_from_a_tokens_file(tmp_path: Path) -> None:
    """`codec-server` with TRANSFER_CODEC_TOKENS_FILE: names the people; the log names Bob."""
    path = tokens_file(tmp_path, f"alice:{ALICE}\nbob:{BOB}\n")
    log = tmp_path / "codec-server.log"
    process = await start_process(
        [sys.executable, "starter.py", "codec-server", "--port", "0"],
        log=log,
        ready="Ctrl-C to stop",
        env=starter_env(tmp_path, TRANSFER_CODEC_TOKENS_FILE=str(path)),
        cwd=ROOT,
        ready_within=30,
    )
    printed = log.read_text()
    assert f"Tokens of alice, bob (from {path})" in printed
    found = re.search(r"listening on (http://\S+)", printed)
    assert found is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{found[1]}/decode", json=body(PLAIN), headers=bearer(BOB)) as response,
    ):
        assert 200 == response.status
    assert 0 == await stop_process(process, stop_signal=signal.SIGINT)
    output = log.read_text()
    assert re.search(r"app\.codec_access: at=\S+ person='bob' via=bearer op=decode", output)
    assert BOB not in output
    assert ALICE not in output


async def test_codec_server_command_refuses_a_bad_tokens_entry(tmp_path: Path) -> None:
    """Exit 2, one line naming the entry, no token echoed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "starter.py",
        "codec-server",
        "--port",
        "0",
        cwd=ROOT,
        env=starter_env(tmp_path, TRANSFER_CODEC_TOKENS=f"alice:{ALICE},{BOB}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert 2 == process.returncode
    assert "error: entry 2 of TRANSFER_CODEC_TOKENS is not name:token\n" == err.decode()
