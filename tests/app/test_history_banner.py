"""While history cannot write, every page says so (new tasks are refused); the banner goes once it can."""
from __future__ import annotations

import time

from apphelpers import PAGES, texts

from hydra.history.testing import SmallDisk
from hydra.ui.shared import get_hydra

BANNER = "History cannot write since"


def _banners(app) -> list[str]:
    return [t for t in texts(app, "error") if BANNER in t]


def test_every_page_shows_a_history_that_cannot_write(cluster_env, app):
    with SmallDisk(pages=3000) as disk:
        app.run()
        assert not app.exception and not _banners(app)
        history = get_hydra().history
        disk.fill(history.path)
        assert not history.probe()          # what the next task's row, or the next probe, finds
        for page in ("app.py", *PAGES):
            app.switch_page(page).run()
            assert not app.exception, (page, app.exception)
            [banner] = _banners(app)
            assert "database or disk is full" in banner and "New tasks are refused" in banner, page

        disk.free(history.path)
        deadline = time.monotonic() + 20
        while not get_hydra().history_health().ok:   # the history's own probe, every second
            assert time.monotonic() < deadline, "history did not recover after space was freed"
            time.sleep(0.05)
        app.switch_page("app.py").run()
        assert not app.exception and not _banners(app)
