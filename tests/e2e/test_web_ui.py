"""The Web UI in a real browser, with encrypted payloads and the codec server.

A transfer is findable by status; a browser signed in to the codec server
(through its /login form, then the UI's Codec Server setting "Include
cross-origin credentials") reads its input and summaries; a browser that
never signed in sees only ciphertext; a wrong token gets nothing.

Runs Debian's Chromium through Playwright (`executable_path`, no browser
download). In CI (`CI=true`) a missing browser fails the test; elsewhere it
skips with the reason.
"""

import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payloads
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from app.codec_log import DECODE_LOGGER
from app.codec_server import SESSION_COOKIE, serving_codec
from app.config import Settings
from app.processes import free_port
from app.temporal import temporal_cli
from app.transfers import start_transfer
from tests.keys import TEST_CONVERTER, TEST_RING
from tests.support.ledgers import seeded_ledger
from tests.support.transfers import request
from tests.support.workers import transfer_worker
from workflows import visibility

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CODEC_TOKEN = "web-ui-test-codec-token"
#: Who holds a codec token: the browser signs in with Alice's, so the decode log names her.
PEOPLE = {"alice": CODEC_TOKEN, "bob": "web-ui-bobs-own-codec-token"}
#: The UI's "Readable" input of the compensated transfer, and its summary.
INPUT_TEXT = '"source_account": "ACC-003"'
SUMMARY = "Transfer 20.00 ACC-003 -> ACC-404"
#: How long (ms) the UI may take to show a text: it decodes each payload separately.
SHOWN_WITHIN = 30_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("CI must have Debian's chromium: .ci/run installs it")
    pytest.skip("no chromium on this machine (apt-get install chromium); CI runs this test")


async def read_frames(page: Any) -> str:
    """The text of the page and all its frames, now (for the artifacts, not for assertions)."""
    parts = []
    for frame in page.frames:
        with contextlib.suppress(Exception):  # a frame can detach while we read it
            parts.append(await frame.locator("body").inner_text(timeout=1000))
    return "\n".join(parts)


def frame_body(page: Any, frame_id: str) -> Any:
    """The body of the iframe `frame_id`: the UI renders summaries and details in iframes."""
    return page.frame_locator(f"iframe#{frame_id}").locator("body")


@dataclasses.dataclass(frozen=True)
class WebUI:
    #: Where the browser opens the UI; also the origin the codec server allows.
    origin: str
    #: The codec server, as the dev server's --ui-codec-endpoint.
    codec_url: str

    @property
    def base(self) -> str:
        return f"{self.origin}/namespaces/default"


@pytest.fixture(scope="module")
async def web_ui(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WebUI]:
    """A dev server whose Web UI decodes through a codec server; two transfers ran, a worker up.

    Everything is on 127.0.0.1: the session cookie belongs to the host the
    browser signed in at, and goes with the UI's requests only when UI and
    codec server are the same site (the same host, whatever the ports).
    """
    chromium_path()  # skip before starting anything
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = Settings(ledger_url="", task_queue="", ui_url=origin)
    async with serving_codec(settings, TEST_RING, PEOPLE, port=0) as codec_url:
        env = await WorkflowEnvironment.start_local(
            data_converter=TEST_CONVERTER,
            dev_server_existing_path=temporal_cli(),
            search_attributes=visibility.SEARCH_ATTRIBUTES,
            ui=True,
            ui_port=port,
            dev_server_extra_args=["--ui-codec-endpoint", codec_url],
        )
        try:
            store = seeded_ledger(str(tmp_path_factory.mktemp("web-ui") / "ledger.db"))
            async with transfer_worker(env.client, store) as tq:
                ok, _ = await start_transfer(
                    env.client,
                    request("ACC-001", "ACC-002", "150"),
                    transfer_id="ui-ok",
                    task_queue=tq,
                )
                await ok.result()
                undone, _ = await start_transfer(
                    env.client,
                    request("ACC-003", "ACC-404", "20"),
                    transfer_id="ui-undone",
                    task_queue=tq,
                )
                with pytest.raises(WorkflowFailureError):
                    await undone.result()
                # A worker stays up: the UI asks it for the current details (a query).
                ARTIFACTS.mkdir(exist_ok=True)
                yield WebUI(origin=origin, codec_url=codec_url)
            store.close()
        finally:
            await env.shutdown()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium."""
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def sign_in(page: Any, ui: WebUI, token: str) -> Any:
    """Fill in and submit the codec server's /login form; the response to the POST."""
    await page.goto(f"{ui.codec_url}/login")
    await page.get_by_label("Codec token").fill(token)
    async with page.expect_response(f"{ui.codec_url}/login") as posted:
        await page.get_by_role("button", name="Sign in").click()
    return await posted.value


async def include_credentials(page: Any, ui: WebUI) -> dict[str, str]:
    """Do what a person does in the UI's Codec Server dialog; the localStorage it leaves.

    The dev server's Web UI sends no cookie to the codec server by default
    (its cluster setting IncludeCredentials is false and the CLI has no flag
    for it); only the browser-level setting, with its own endpoint, turns on
    ``credentials: "include"``.
    """
    from playwright.async_api import expect

    await page.goto(f"{ui.base}/workflows")
    await page.locator('[data-testid^="data-encoder-status"]:visible').first.click()
    await page.get_by_text("Use my browser setting").click()
    await page.get_by_test_id("data-encoder-endpoint-input").fill(ui.codec_url)
    await page.get_by_test_id("data-encoder-include-credentials").click()
    await page.get_by_role("button", name="Apply").click()
    await expect(page.get_by_test_id("data-encoder-title")).to_be_hidden()
    stored: dict[str, str] = await page.evaluate("() => Object.assign({}, window.localStorage)")
    return stored


async def test_web_ui_finds_a_transfer_by_status_and_shows_its_summary_and_steps(
    web_ui: WebUI, browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed in to the codec: filter by TransferStatus, open it; input, summaries, steps show.

    The codec server's decode log names who decrypted (Alice, by her
    session) and the namespace, never what was decrypted.
    """
    from playwright.async_api import expect

    caplog.set_level(logging.INFO, logger=DECODE_LOGGER)

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    signed_in = await sign_in(page, web_ui, CODEC_TOKEN)
    assert 200 == signed_in.status
    await expect(page.locator("body")).to_contain_text("signed in to the codec server as alice")
    assert SESSION_COOKIE in {cookie["name"] for cookie in await context.cookies()}
    stored = await include_credentials(page, web_ui)
    # The UI keeps its Codec Server setting in localStorage, as JSON values.
    assert "true" == stored["includeCredentials"]
    assert "true" == stored["overrideRemoteCodecConfiguration"]
    assert web_ui.codec_url == json.loads(stored["endpoint"])

    query = quote('TransferStatus="compensated"')
    await page.goto(f"{web_ui.base}/workflows?query={query}")
    await expect(page.get_by_text("ui-undone").first).to_be_visible(timeout=30_000)
    await expect(page.get_by_text("ui-ok")).to_have_count(0)
    await page.screenshot(path=ARTIFACTS / "web-ui-list-compensated.png", full_page=True)

    await page.goto(f"{web_ui.base}/workflows/ui-undone")
    body = page.locator("body")
    # The timeline labels each activity with its summary (decrypted by the codec server).
    await expect(body).to_contain_text("debit ACC-003 20.00", timeout=SHOWN_WITHIN)
    await expect(body).to_contain_text("reverse_debit ACC-003 20.00", timeout=SHOWN_WITHIN)
    panel = page.get_by_test_id("input-and-result")
    await expect(panel).to_contain_text(INPUT_TEXT, timeout=SHOWN_WITHIN)
    await expect(panel).to_contain_text('"amount": "20.00"', timeout=SHOWN_WITHIN)
    await expect(panel).to_contain_text('"destination_account": "ACC-404"', timeout=SHOWN_WITHIN)
    # The failure, decrypted too (the UI decodes it apart from the input).
    await expect(panel).to_contain_text("Account not found: ACC-404", timeout=SHOWN_WITHIN)
    await expect(page.get_by_test_id("data-encoder-status-success").first).to_be_attached()
    await page.screenshot(path=ARTIFACTS / "web-ui-transfer.png", full_page=True)
    # The static summary and the current details live under User Metadata.
    await page.get_by_role("tab", name="User Metadata").click()
    summary = frame_body(page, "user-metadata-summary")
    details = frame_body(page, "user-metadata-current-details")
    await expect(summary).to_contain_text(SUMMARY, timeout=SHOWN_WITHIN)
    await expect(details).to_contain_text("Status: compensated", timeout=SHOWN_WITHIN)
    await expect(details).to_contain_text("reverse_credit", timeout=SHOWN_WITHIN)
    # One line per step, its parts apart (a markdown table's cells ran together).
    await expect(details).to_contain_text("credit: failed, AccountNotFound: Account not found")
    await expect(details).to_contain_text("reverse_debit: completed, 20.00 CLEARING → ACC-003")
    (ARTIFACTS / "web-ui-user-metadata.txt").write_text(await read_frames(page))
    await page.screenshot(path=ARTIFACTS / "web-ui-user-metadata.png", full_page=True)
    await context.close()
    decodes = [r.getMessage() for r in caplog.records if r.name == DECODE_LOGGER]
    assert decodes, "no decode was logged"
    said = "person='alice' via=session op=decode namespace='default' payloads="
    assert all(said in line and line.endswith("status=200") for line in decodes), decodes
    assert not any("ACC-003" in line or "20.00" in line for line in decodes)


async def test_web_ui_without_a_codec_sign_in_shows_only_ciphertext(
    web_ui: WebUI, browser: Any
) -> None:
    """A browser that never signed in (credentials on): the codec says 401, the UI shows base64."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await include_credentials(page, web_ui)
    async with page.expect_response(re.compile(r"/decode")) as decoded:
        await page.goto(f"{web_ui.base}/workflows/ui-undone")
    assert 401 == (await decoded.value).status

    # The input is shown as it is stored: the encrypted payload's base64 data.
    panel = page.get_by_test_id("input-and-result")
    base64_data = re.compile(r'"[A-Za-z0-9+/]{40,}={0,2}"')
    await expect(panel).to_contain_text(base64_data, timeout=SHOWN_WITHIN)
    # The failure is the encrypted one too: its metadata says binary/encrypted (in base64).
    await expect(panel).to_contain_text("Encoded failure", timeout=SHOWN_WITHIN)
    encrypted = base64.b64encode(b"binary/encrypted").decode()
    await expect(panel).to_contain_text(encrypted, timeout=SHOWN_WITHIN)
    await expect(panel).not_to_contain_text("ACC-003")
    banner = page.get_by_text("Codec Server could not connect").filter(visible=True)
    await expect(banner.first).to_be_visible()
    await expect(page.get_by_test_id("data-encoder-status-error").first).to_be_attached()
    await expect(page.locator("body")).not_to_contain_text("debit ACC-003 20.00")
    await page.screenshot(path=ARTIFACTS / "web-ui-encrypted.png", full_page=True)
    await page.get_by_role("tab", name="User Metadata").click()
    # What the UI shows when it cannot decode: no summary, and current details it cannot read.
    metadata = page.get_by_test_id("user-metadata")
    details = frame_body(page, "user-metadata-current-details")
    await expect(metadata).to_contain_text("No summary available", timeout=SHOWN_WITHIN)
    await expect(details).to_contain_text("No Current Details", timeout=SHOWN_WITHIN)
    await expect(page.locator("iframe#user-metadata-summary")).to_have_count(0)
    for shown in metadata, details:
        await expect(shown).not_to_contain_text(SUMMARY)
        await expect(shown).not_to_contain_text("ACC-003")
    (ARTIFACTS / "web-ui-encrypted-user-metadata.txt").write_text(await read_frames(page))
    await page.screenshot(path=ARTIFACTS / "web-ui-encrypted-user-metadata.png", full_page=True)
    await context.close()


async def test_codec_server_refuses_a_wrong_token_from_the_browser(
    web_ui: WebUI, browser: Any
) -> None:
    """The /login form with a wrong token: 401, no cookie; /decode with a wrong bearer: 401."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    refused = await sign_in(page, web_ui, "not-the-codec-token")
    assert 401 == refused.status
    assert [] == await context.cookies()
    await page.screenshot(path=ARTIFACTS / "web-ui-codec-login-refused.png", full_page=True)

    sealed = await TEST_CONVERTER.encode(["ACC-003"])
    payloads = MessageToDict(Payloads(payloads=sealed))
    await page.goto(f"{web_ui.base}/workflows")
    call = """async ([url, token, body]) => {
        const response = await fetch(url, {
            method: "POST",
            headers: {"Content-Type": "application/json", "X-Namespace": "default",
                      "Authorization": `Bearer ${token}`},
            body: JSON.stringify(body),
        });
        return {status: response.status, body: await response.text()};
    }"""
    wrong = await page.evaluate(call, [f"{web_ui.codec_url}/decode", "wrong", payloads])
    assert 401 == wrong["status"]
    assert "ACC-003" not in wrong["body"]
    # The same call with the token works from the UI's origin (CORS lets the page read it).
    right = await page.evaluate(call, [f"{web_ui.codec_url}/decode", CODEC_TOKEN, payloads])
    assert 200 == right["status"]
    decoded = ParseDict(json.loads(right["body"]), Payloads()).payloads
    assert ["ACC-003"] == TEST_CONVERTER.payload_converter.from_payloads(list(decoded), [str])
    await context.close()


#: The transfer's search attributes as columns of the Web UI's workflow list.
STORY_COLUMNS = ["TransferStatus", "SourceAccount", "DestinationAccount", "TransferAmount"]
#: Default columns that say nothing about a transfer, removed to make room.
HIDDEN_COLUMNS = ["Run ID", "Type", "End"]


async def test_web_ui_list_shows_each_transfers_status_column_and_a_saved_view(
    web_ui: WebUI, browser: Any
) -> None:
    """Columns added once (Configure Columns) and a view saved from a link tell the story.

    The UI's own Status says Failed for a compensated transfer; the
    TransferStatus column says compensated. A link with `savedQuery=NAME`
    saves its query as a view of that name in the browser.
    """
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1600, "height": 700})
    page = await context.new_page()
    await page.goto(f"{web_ui.base}/workflows")
    await expect(page.get_by_text("ui-undone").first).to_be_visible(timeout=30_000)
    await page.get_by_role("button", name="Configure Columns").first.click()
    for column in HIDDEN_COLUMNS:
        await page.get_by_role("button", name=f"Remove {column} column").click()
    for column in STORY_COLUMNS:
        await page.get_by_role("button", name=f"Add {column} column").click()
    await page.screenshot(path=ARTIFACTS / "web-ui-configure-columns.png")
    await page.keyboard.press("Escape")
    stored: dict[str, str] = await page.evaluate("() => Object.assign({}, window.localStorage)")
    columns = json.loads(stored["namespace-workflow-table-columns"])["default"]
    assert ["Status", "Workflow ID", *STORY_COLUMNS] == [
        c["label"] for c in columns if c["label"] != "Start"
    ]

    query = quote('TransferStatus="compensated"')
    await page.goto(f"{web_ui.base}/workflows?query={query}&savedQuery=Compensated")
    rows = page.locator("table tbody tr")
    await expect(rows.filter(has_text="ui-undone")).to_contain_text("compensated", timeout=30_000)
    await expect(rows.filter(has_text="ui-undone")).to_contain_text("ACC-003")
    views = json.loads(
        await page.evaluate("() => window.localStorage.getItem('saved-workflow-queries')")
    )
    assert [("Compensated", 'TransferStatus="compensated"')] == [
        (view["name"], view["query"]) for view in views["default"]
    ]
    await page.goto(f"{web_ui.base}/workflows")
    await expect(rows.filter(has_text="ui-ok")).to_contain_text("completed", timeout=30_000)
    await expect(rows.filter(has_text="ui-undone")).to_contain_text("compensated")
    await page.screenshot(path=ARTIFACTS / "web-ui-list-by-status.png")
    await page.goto(f"{web_ui.base}/workflows?query={query}")
    await page.get_by_test_id("saved-views-button").click()
    await expect(page.get_by_role("menuitem", name="Compensated")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "web-ui-saved-view.png")
    await context.close()
