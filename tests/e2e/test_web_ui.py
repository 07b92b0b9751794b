"""The Web UI in a real browser: a transfer is findable by status and readable without payloads.

Runs Debian's Chromium through Playwright (`executable_path`, no browser
download). In CI (`CI=true`) a missing browser fails the test; elsewhere it
skips with the reason.
"""

import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from app.temporal import temporal_cli
from app.transfers import start_transfer
from ledger import open_store
from tests.conftest import OPENING
from tests.keys import TEST_CONVERTER
from tests.workflows.conftest import transfer_worker
from tests.workflows.helpers import request
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


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("CI must have Debian's chromium: .ci/run installs it")
    pytest.skip("no chromium on this machine (apt-get install chromium); CI runs this test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def frames_text(page: Any, expected: str, *, seconds: float = 30) -> str:
    """The text of the page and all its frames, once `expected` shows up in it."""
    text = ""
    for _ in range(int(seconds * 5)):
        parts = []
        for frame in page.frames:
            with contextlib.suppress(Exception):  # a frame can detach while we read it
                parts.append(await frame.locator("body").inner_text(timeout=1000))
        text = "\n".join(parts)
        if expected in text:
            return text
        await page.wait_for_timeout(200)
    raise AssertionError(f"{expected!r} never appeared; the page said: {text[:2000]}")


@pytest.fixture
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A dev server with its Web UI on a free port."""
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        dev_server_existing_path=temporal_cli(),
        search_attributes=visibility.SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=port,
    )
    yield env, port
    await env.shutdown()


async def test_web_ui_finds_a_transfer_by_status_and_shows_its_summary_and_steps(
    ui_env: tuple[WorkflowEnvironment, int], tmp_path: Path
) -> None:
    """Filter by TransferStatus, open the transfer: summary and step table are on the page."""
    executable = chromium_path()
    from playwright.async_api import async_playwright, expect

    env, port = ui_env
    store = open_store(str(tmp_path / "ledger.db"))
    for account_id, (owner, balance) in OPENING.items():
        store.open_account(account_id, owner, Decimal(balance))
    async with transfer_worker(env.client, store) as tq:
        ok, _ = await start_transfer(
            env.client, request("ACC-001", "ACC-002", "150"), transfer_id="ui-ok", task_queue=tq
        )
        await ok.result()
        undone, _ = await start_transfer(
            env.client, request("ACC-003", "ACC-404", "20"), transfer_id="ui-undone", task_queue=tq
        )
        with pytest.raises(WorkflowFailureError):
            await undone.result()

        # A worker stays up: the UI asks it for the current details (a query).
        ARTIFACTS.mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{port}/namespaces/default"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS
            )
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                query = quote('TransferStatus="compensated"')
                await page.goto(f"{base}/workflows?query={query}")
                await expect(page.get_by_text("ui-undone").first).to_be_visible(timeout=30_000)
                await expect(page.get_by_text("ui-ok")).to_have_count(0)
                await page.screenshot(
                    path=ARTIFACTS / "web-ui-list-compensated.png", full_page=True
                )

                await page.goto(f"{base}/workflows/ui-undone")
                body = page.locator("body")
                # The timeline labels each activity with its summary.
                await expect(body).to_contain_text("debit ACC-003 20.00", timeout=30_000)
                await expect(body).to_contain_text("reverse_debit ACC-003 20.00")
                await page.screenshot(path=ARTIFACTS / "web-ui-transfer.png", full_page=True)
                # The static summary and the current details live under User Metadata.
                await page.get_by_role("tab", name="User Metadata").click()
                # The UI renders summaries and details (markdown) in sandboxed iframes.
                text = await frames_text(page, "Status: compensated")
                (ARTIFACTS / "web-ui-user-metadata.txt").write_text(text)
                assert "Transfer 20.00 ACC-003 -> ACC-404" in text
                assert "Status: compensated" in text
                assert "reverse_credit" in text
                await page.screenshot(path=ARTIFACTS / "web-ui-user-metadata.png", full_page=True)
            finally:
                await browser.close()
