"""The Batch page in Chromium: upload a CSV, see the preview, start, watch the progress reach the end,
download the results as CSV (the original columns and each row's answer)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browserkit import CHROMIUM, CHROMIUM_ARGS, SHOTS, app_over_seed, shot

pytestmark = pytest.mark.browser
ROWS = 24


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    with app_over_seed(tmp_path_factory.mktemp("batch"), time_scale=0.3) as url:
        yield url


def test_upload_progress_download(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    source = tmp_path / "reviews.csv"
    source.write_text("id,review\n" + "".join(f"{i},\"Review number {i}, quite good\"\n" for i in range(ROWS)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True).new_page()
            page.goto(f"{app_url}/Batch")
            page.get_by_role("heading", name="Batch").wait_for(timeout=30_000)
            page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(source))
            page.get_by_text(f"{ROWS} rows · columns").wait_for(timeout=15_000)
            page.locator(".st-key-batch-model").click()
            page.get_by_role("option", name="llama3.2:3b").click()
            cap = page.get_by_label("Answer cap (tokens, 0: none)")
            cap.fill("16")
            cap.press("Enter")
            template = page.get_by_label("Prompt template: {column} is each row's value")
            template.fill("Label as positive or negative: {review}")
            template.press("Control+Enter")
            # The preview is a data grid (a canvas): its cells are in the DOM for screen readers, not visible.
            page.locator("td[role=gridcell]", has_text="Label as positive or negative: Review number 0").first.wait_for(
                state="attached", timeout=15_000)
            shot(page, "batch-preview")
            page.get_by_role("button", name="Start batch").click()
            page.get_by_text(f"of {ROWS} rows ended").first.wait_for(timeout=15_000)
            shot(page, "batch-running", whole=False)
            page.get_by_text(f"{ROWS} of {ROWS} rows ended · done").wait_for(timeout=90_000)
            # The bar is drawn before the line under it, and the batch's end reruns the whole page: wait
            # for the line to be there, once.
            expect(page.get_by_text("Rows done per node:")).to_have_count(1, timeout=15_000)
            shot(page, "batch-done")
            with page.expect_download(timeout=30_000) as waiting:
                page.get_by_role("button", name="Download CSV").click()
            data = Path(waiting.value.path()).read_text(encoding="utf-8")
        finally:
            browser.close()
    rows = list(csv.DictReader(io.StringIO(data)))
    assert [r["id"] for r in rows] == [str(i) for i in range(ROWS)]
    assert rows[5]["review"] == "Review number 5, quite good"
    assert all(r["status"] == "done" and r["answer"] and r["node"] in ("light", "powerful") for r in rows)
