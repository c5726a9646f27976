"""The console's "Download the evidence package" button, in headless Chromium against a real
server whose data directory holds sold lots: the saved zip verifies offline."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from evidence_kit import build_data
from web_kit import (  # noqa: F401  (the `running` fixture)
    Running,
    new_page,
    running,
    wait_text,
)

from auction.accounts import Role
from auction.audit.evidence_package import verify_evidence_package
from auction.web.app import GATEWAY

pytestmark = [pytest.mark.chromium]


@pytest.fixture
def sold(tmp_path: Path) -> str:
    """`tmp_path/data` (the `running` server's directory) filled before the server starts."""
    return build_data(tmp_path / "data")


async def test_console_button_saves_a_package_that_verifies(
    sold: str,
    running: Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, token, _ = await running.app[GATEWAY].create_staff_session(Role.AUCTIONEER)
    errors: list[str] = []
    page = await new_page(running, errors, width=1000)
    await page.goto(f"{running.url}/console#token={token}")
    await page.get_by_label("Lot", exact=True).select_option(sold)
    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Download the evidence package (.zip)").click()
    download = await waiting.value
    assert download.suggested_filename == f"evidence-{sold}.zip"
    saved = tmp_path / "saved.zip"
    await download.save_as(saved)
    await wait_text(page, "#evidence-result", f"Evidence package of {sold} saved")
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "unzipped")
    report = verify_evidence_package(tmp_path / "unzipped" / f"evidence-{sold}")
    assert report.lot == sold and report.status == "sold"
    assert not errors, errors
