"""The report in a real browser: headless Chromium (Debian's package) driven by Playwright
loads index.html from disk, every figure decodes, the console stays clean, no script runs,
and a screenshot is kept (also in $PARABENCH_SCREENSHOT_DIR when set)."""
import os
import shutil
from pathlib import Path

import pytest

from parabench.report import build_report

from synthetic import EVIL_FAMILY, make_evil_db

CHROMIUM = os.environ.get("PARABENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _load(browser, index: Path, shot: Path) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, dialogs, requests = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(index.as_uri(), wait_until="load")
    images = page.evaluate(
        "Array.from(document.images).map(i => ({w: i.naturalWidth, ok: i.complete,"
        " alt: i.alt}))")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("PARABENCH_SCREENSHOT_DIR"):
        keep = Path(os.environ["PARABENCH_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / shot.name)
    page.close()
    return {"errors": errors, "dialogs": dialogs, "images": images, "width": width,
            "requests": [u for u in requests if not u.startswith(("file:", "data:"))]}


@pytest.mark.parametrize("kind", ["paper", "quick"])
def test_report_renders_in_chromium(browser, tmp_path, kind, request):
    if kind == "paper":  # built once for the session (test_report.py reads it too)
        res = request.getfixturevalue("paper_report")
    else:
        db, run_id = make_evil_db(tmp_path / "r.db", kind)
        res = build_report(db, [run_id], tmp_path / "report")
    assert EVIL_FAMILY["resnet"] in (res.out / "data.csv").read_text()  # markup to escape
    got = _load(browser, res.index, tmp_path / f"report-{kind}.png")
    print(f"\n{kind}: {len(got['images'])} figures, screenshot {tmp_path}/report-{kind}.png")
    assert got["errors"] == []
    assert got["dialogs"] == []  # escaped markup never ran
    assert got["requests"] == []  # self-contained: no network
    assert len(got["images"]) == len(res.figures) > 0
    assert all(i["ok"] and i["w"] > 0 for i in got["images"]), got["images"]
    assert got["width"] <= 1280  # nothing forces a horizontal scroll
    assert (tmp_path / f"report-{kind}.png").stat().st_size > 50_000
