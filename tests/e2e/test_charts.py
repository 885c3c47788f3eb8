"""The Distribution page's charts read well on a desktop (1440x900) and a phone (390x844): no Plotly
toolbar over them, no legend over a title, and the requests-over-time bars span the plot instead of
sitting as a sliver at its right edge (issue 14 item 10). Screenshots go to artifacts/screenshots/."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hydra.service import Hydra
from hydra.sim import start_cluster
from tests.e2e.browserkit import CHROMIUM, CHROMIUM_ARGS, SHOTS, clean_env, require_chromium, streamlit

pytestmark = pytest.mark.browser

PROMPTS = ("Write a Python function that reverses a list", "Explain the CAP theorem briefly",
           "Solve 3x + 5 = 20", "Describe a quiet harbour town", "Create unit tests for add(a, b)",
           "Why is the sky blue?")
MODES = ("fast", "async", "reliable")

# Each box as {x, y, width, height} in CSS pixels, read from the drawn SVG.
BOXES_JS = """(key) => {
  const root = document.querySelector('.st-key-' + key);
  if (!root) return null;
  const box = (el) => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const all = (sel) => Array.from(root.querySelectorAll(sel)).map(box).filter(b => b.w > 0 && b.h > 0);
  return {title: all('.gtitle'), legend: all('.legend .bg, .legend .legendtext'), plot: all('.nsewdrag'),
          bars: all('.barlayer .point path'), modebar: all('.modebar')};
}"""


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("charts")
    with start_cluster("seed", time_scale=0.1) as cluster:
        env = {"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(tmp / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
               "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
        hydra = Hydra.from_env(env, poll_interval_s=0.1).start()
        try:  # a few minutes' worth of history in one burst: the page's default window is an hour
            handles = [hydra.submit(p, mode=MODES[i % 3], max_tokens=8) for i, p in enumerate(PROMPTS * 2)]
            for handle in handles:
                handle.result(timeout=60)
        finally:
            hydra.close()
        with streamlit("app.py", clean_env(**env), tmp / "streamlit.log") as url:
            yield url


@pytest.mark.parametrize("size", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_distribution_charts_read_well(app_url: str, size: tuple[int, int]) -> None:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(f"{app_url}/Distribution")
            for key in ("chart-time", "chart-node", "chart-mode", "chart-outcomes"):
                page.locator(f".st-key-{key} .main-svg").first.wait_for(timeout=30_000)
            page.wait_for_timeout(800)  # Plotly lays the legend out after the first paint
            boxes = {key: page.evaluate(BOXES_JS, key) for key in
                     ("chart-time", "chart-node", "chart-model", "chart-task_type", "chart-mode",
                      "chart-ttft", "chart-speed", "chart-outcomes")}
            page.locator(".st-key-chart-time").hover()  # the toolbar used to appear on hover
            page.wait_for_timeout(300)
            hovered = page.evaluate(BOXES_JS, "chart-time")
            name = f"distribution-charts-{'desktop' if size[0] > 600 else 'phone'}"
            page.locator(".st-key-chart-time").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
            page.locator(".st-key-chart-outcomes").scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(SHOTS / f"{name}-lower.png"))
        finally:
            browser.close()
    drawn = {k: v for k, v in boxes.items() if v is not None}
    assert {"chart-time", "chart-node", "chart-mode", "chart-outcomes"} <= set(drawn), sorted(drawn)
    assert hovered["modebar"] == [], "the Plotly toolbar shows"
    for key, box in drawn.items():
        assert box["title"], f"{key} has no title"
        assert box["modebar"] == [], f"{key}: the Plotly toolbar shows"
        for title in box["title"]:
            crowded = [legend for legend in box["legend"] if _overlap(title, legend)]
            assert not crowded, f"{key}: the legend overlaps the title {title}: {crowded}"
    _assert_bars_span_the_plot(drawn["chart-time"])


def _assert_bars_span_the_plot(box: dict[str, Any]) -> None:
    """The bars of a burst of tasks fill a visible share of the axis, not a sliver at its right edge."""
    [plot] = box["plot"][:1]
    bars = box["bars"]
    assert bars, "no bars drawn"
    width = sum(b["w"] for b in bars) / len(bars)
    # The hour's window in 60 s buckets drew each bar 1/70 of the axis wide; scaled to the data (at
    # least MIN_BUCKETS_SHOWN buckets), a bar is about 1/14 of it.
    assert width >= plot["w"] / 25, f"bars {width:.1f} px wide in a {plot['w']:.0f} px plot: a sliver"
    assert all(plot["x"] - 1 <= b["x"] and b["x"] + b["w"] <= plot["x"] + plot["w"] + 1 for b in bars), \
        "a bar is drawn outside the axis range"


def test_screenshots_are_where_the_readme_says() -> None:
    assert Path(SHOTS).parts[-2:] == ("artifacts", "screenshots")
