"""The Nodes page pulls a model onto a node with a progress bar, and deletes one after a confirmation:
real Chromium against ``streamlit run app.py`` over a simulated ``seed`` cluster."""
from __future__ import annotations

import re
from collections.abc import Iterator

import ollama
import pytest

from hydra.sim import SimCluster, start_cluster
from tests.e2e.browserkit import CHROMIUM, CHROMIUM_ARGS, clean_env, require_chromium, shot, streamlit

pytestmark = pytest.mark.browser

MODEL = "qwen3:1.7b"  # 1.2 GB: a pull of ~6 simulated seconds, 3 s at this time scale


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimCluster]:
    with start_cluster("seed", time_scale=0.5) as c:
        ollama.Client(host=c.node("light").url).delete(MODEL)  # light starts without it
        yield c


@pytest.fixture(scope="module")
def page(cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("app")
    env = clean_env(SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp / "hydra.db"), HYDRA_EMBEDDED_NODE="off",
                    HYDRA_GATEWAY_PORT="0", SOLLOL_DISCOVER_LOCALHOST="false")
    with streamlit("app.py", env, tmp / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            page.goto(f"{url}/Nodes")
            page.get_by_text("Models on the nodes").wait_for(timeout=30_000)
            yield page
        finally:
            browser.close()


def _names(cluster: SimCluster, node: str) -> set[str]:
    return {m.model or "" for m in ollama.Client(host=cluster.node(node).url).list().models}


_IDLE = """() => !document.querySelector(
    '[data-testid=stStatusWidgetRunningIcon], [data-testid=stStatusWidgetRunningManIcon], [data-stale=true]')"""


def _idle(page: object) -> None:
    """Until no script run is going on and nothing on the page is stale (a rerun redraws it)."""
    page.wait_for_function(_IDLE, timeout=15_000)  # type: ignore[attr-defined]


def _choose(page: object, label: str, option: str) -> None:
    """Pick ``option`` in a selectbox: typed into its search, taken with Enter; then check it shows."""
    from playwright.sync_api import expect

    _idle(page)
    box = page.locator(f'[data-stale=false] input[aria-label="{label}"]')  # type: ignore[attr-defined]
    box.click()
    box.press_sequentially(option)
    page.get_by_role("option", name=option, exact=True).wait_for(timeout=10_000)  # type: ignore[attr-defined]
    box.press("Enter")
    expect(box).to_have_value(option, timeout=10_000)
    _idle(page)


def _button(page: object, name: str) -> object:
    """The one live button called ``name``. While a fragment reruns, Streamlit can show the old copy
    beside the new one for a moment, so wait until exactly one is not stale."""
    from playwright.sync_api import expect

    _idle(page)
    button = page.locator("[data-stale=false]").get_by_role("button", name=name, exact=True)  # type: ignore[attr-defined]
    expect(button).to_have_count(1, timeout=15_000)
    return button


def test_pull_onto_a_node_shows_its_progress_then_the_model_is_there(page: object, cluster: SimCluster) -> None:
    page.get_by_label("Model", exact=True).fill(MODEL)  # type: ignore[attr-defined]
    _choose(page, "Onto", "light")
    page.get_by_role("button", name="Pull").click()  # type: ignore[attr-defined]
    # mid-pull: the bar names the node and a share that is neither 0 % nor done
    mid = re.compile(r"light: pulling [0-9a-f]{12} \(([1-9]|[1-9][0-9])%\)")
    bar = page.locator("[data-testid=stProgress]").filter(has_text=mid)  # type: ignore[attr-defined]
    bar.wait_for(timeout=15_000)
    # the text and the bar at one instant: the bar is as far as the text says
    text, value = bar.evaluate("e => [e.innerText, e.querySelector('[role=progressbar]').ariaValueNow]")
    match = mid.search(text)
    assert match is not None and abs(int(value) - int(match.group(1))) <= 1, (text, value)
    shot(page, "nodes-pull-progress", whole=False)
    page.get_by_text(f"Done: pull {MODEL} on light.").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    assert MODEL in _names(cluster, "light")


def test_delete_asks_first_then_removes_the_model(page: object, cluster: SimCluster) -> None:
    _choose(page, "From node", "light")
    _choose(page, "Model to delete", MODEL)
    _button(page, "Delete…").click()  # type: ignore[attr-defined]
    page.get_by_text(f"Delete {MODEL} from light?").wait_for(timeout=15_000)  # type: ignore[attr-defined]
    _idle(page)
    assert MODEL in _names(cluster, "light")  # asking deleted nothing
    _button(page, "Delete model").click()  # type: ignore[attr-defined]
    page.get_by_text(f"Done: delete {MODEL} on light.").wait_for(timeout=15_000)  # type: ignore[attr-defined]
    assert MODEL not in _names(cluster, "light")
    shot(page, "nodes-model-deleted")
