"""The operator page in headless Chromium (Debian's, driven by Playwright) on Azurite clips."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import wait_until
from tests.viewer.server import ROOT, ViewerProcess

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
# rebind.test resolves to 127.0.0.1 in this browser: a DNS rebinding attack, made real.
REBIND = "rebind.test"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--host-resolver-rules=MAP {REBIND} 127.0.0.1"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, viewer: ViewerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(viewer.url + "/")
    yield tab
    context.close()
    assert errors == []


def cards(page: Any) -> list[str]:
    return page.eval_on_selector_all(".clip", "els => els.map(e => e.dataset.id)")


def shown(page: Any, count: int) -> bool:
    return wait_until(lambda: len(cards(page)) == count, 15)


def test_list_shows_the_clips_grouped(page: Any, clip_ids: list[str],
                                      artifacts: Path) -> None:
    assert shown(page, len(clip_ids)), cards(page)
    assert sorted(cards(page)) == sorted(clip_ids)
    groups = page.eval_on_selector_all(".group h3", "els => els.map(e => e.textContent)")
    assert groups[0] == "2026-11-22 · train-0002 · cam-03"
    assert "2026-11-21 · train-0001 · cam-01" in groups
    assert wait_until(lambda: page.evaluate(
        "[...document.querySelectorAll('.clip img')].every(i => i.complete && "
        "i.naturalWidth > 0)"), 15)
    first = page.locator(".clip").first
    assert first.locator(".time").inner_text() == "06:00:00 UTC"
    assert first.locator(".score").inner_text() == "0.80"
    assert first.locator(".place").inner_text() == "car 7001 cab"
    page.screenshot(path=str(artifacts / "list.png"), full_page=True)


def test_filters_narrow_the_list(page: Any, clip_ids: list[str]) -> None:
    assert shown(page, len(clip_ids))
    page.fill("#f-train", "train-0002")
    page.click("#apply")
    assert shown(page, 3), cards(page)
    assert all(c.startswith("train-0002/") for c in cards(page))
    page.fill("#f-score", "0.75")
    page.click("#apply")
    assert shown(page, 2), cards(page)
    page.fill("#f-train", "")
    page.fill("#f-score", "")
    page.fill("#f-from", "2026-11-21")
    page.fill("#f-to", "2026-11-21")
    page.fill("#f-camera", "cam-02")
    page.click("#apply")
    assert shown(page, 1), cards(page)
    for field in ("#f-from", "#f-to", "#f-camera"):
        page.fill(field, "")
    page.fill("#f-carriage", "4021")
    page.click("#apply")
    assert shown(page, 3), cards(page)
    page.click("#clear-filters")
    assert shown(page, len(clip_ids))


def overlay_pixels(page: Any) -> int:
    return int(page.evaluate("""() => {
        const c = document.querySelector('#overlay');
        if (!c.width || !c.height) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }"""))


def test_clip_plays_with_boxes_and_timeline(page: Any, clip_ids: list[str],
                                            artifacts: Path) -> None:
    clip = next(c for c in clip_ids if c.endswith("_ev-a1"))
    assert shown(page, len(clip_ids))
    page.click(f".clip[data-id='{clip}'] img")
    page.wait_for_selector("#player:not([hidden])")
    assert page.inner_text("#clip-title") == "train-0001 · car 4021 left · cam-01 · ev-a1"
    assert wait_until(lambda: page.evaluate("document.querySelector('#video').readyState") >= 2,
                      15), page.evaluate("document.querySelector('#video').error?.message")
    marks = page.eval_on_selector_all("#timeline .mark", "els => els.map(e => +e.dataset.t)")
    assert len(marks) >= 5
    page.evaluate("document.querySelector('#video').play()")
    assert wait_until(lambda: page.evaluate("document.querySelector('#video').currentTime")
                      > 0.5, 15)
    # Boxes are drawn while it plays: painted pixels on the overlay and the drawn count.
    assert wait_until(lambda: overlay_pixels(page) > 100, 10)
    assert int(page.get_attribute("#overlay", "data-boxes") or 0) >= 1
    page.screenshot(path=str(artifacts / "playing.png"))
    # The timeline jumps: a click on a detection mark moves the video there.
    page.evaluate("document.querySelector('#video').pause()")
    target = marks[len(marks) // 2]
    page.click(f"#timeline .mark[data-t='{target:g}']")
    assert wait_until(lambda: abs(page.evaluate(
        "document.querySelector('#video').currentTime") - target) < 0.05, 5)
    assert wait_until(lambda: overlay_pixels(page) > 100, 5)


def test_review_survives_a_reload(page: Any, viewer: ViewerProcess,
                                  clip_ids: list[str]) -> None:
    clip = next(c for c in clip_ids if c.endswith("_ev-a3"))
    assert shown(page, len(clip_ids))
    page.click(f".clip[data-id='{clip}'] img")
    page.wait_for_selector("#player:not([hidden])")
    page.check("#review input[value='false_positive']")
    page.fill("#note", "reflection of a poster")
    page.click("#save")
    assert wait_until(lambda: page.inner_text("#review-status").startswith("saved"), 10), \
        page.inner_text("#review-status")
    page.reload()
    assert shown(page, len(clip_ids))
    card = page.locator(f".clip[data-id='{clip}']")
    assert card.get_attribute("data-state") == "false_positive"
    assert card.locator(".badge").inner_text() == "false positive"
    card.locator("img").click()
    assert wait_until(lambda: page.input_value("#note") == "reflection of a poster", 10)
    assert page.is_checked("#review input[value='false_positive']")
    # Another operator's change in between: the page says so instead of overwriting it.
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    viewer.json("PUT", f"/api/reviews/{clip}", {"state": "confirmed",
                                                 "etag": detail["review_etag"]})
    page.check("#review input[value='cleaned']")
    page.click("#save")
    assert wait_until(lambda: "changed by someone else" in page.inner_text("#review-status"),
                      10)


def test_export_writes_automl_jsonl(viewer: ViewerProcess, clip_ids: list[str],
                                    azurite: Any, tmp_path: Path) -> None:
    marks = {"ev-a1": "confirmed", "ev-b1": "false_positive"}
    for event_id, state in marks.items():
        clip = next(c for c in clip_ids if c.endswith("_" + event_id))
        status, detail = viewer.json("GET", f"/api/clips/{clip}")
        status, _ = viewer.json("PUT", f"/api/reviews/{clip}",
                                {"state": state, "etag": detail["review_etag"]})
        assert status == 200
    out = tmp_path / "set"
    result = subprocess.run(
        [sys.executable, "-m", "viewer", "export", "--out", str(out)], cwd=ROOT,
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin",
             "UPLOADER_UPLOAD__CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert lines
    labelled = [x for x in lines if x["label"]]
    negatives = [x for x in lines if not x["label"]]
    assert labelled and negatives
    assert any("ev-a1" in x["image_url"] for x in labelled)
    assert all("ev-b1" not in x["image_url"] for x in labelled)
    assert any("ev-b1" in x["image_url"] for x in negatives)
    for line in lines:
        assert set(line) == {"image_url", "image_details", "label"}
        assert (out / line["image_url"]).stat().st_size > 1000
        assert line["image_details"] == {"format": "jpg", "width": "640px", "height": "360px"}
        for box in line["label"]:
            assert box["label"] == "graffiti" and box["isCrowd"] == 0
            assert 0 <= box["topX"] < box["bottomX"] <= 1
            assert 0 <= box["topY"] < box["bottomY"] <= 1
    assert "AccountKey" not in result.stdout + result.stderr


def test_interrupted_clip_is_shown_as_such(page: Any, clip_ids: list[str],
                                           artifacts: Path) -> None:
    clip = next(c for c in clip_ids if c.endswith("_ev-c2"))
    assert shown(page, len(clip_ids))
    card = page.locator(f".clip[data-id='{clip}']")
    assert card.locator(".flag.interrupted").inner_text() == "interrupted"
    others = [c for c in clip_ids if c != clip]
    assert all(page.locator(f".clip[data-id='{c}'] .flag").count() == 0 for c in others)
    card.locator("img").click()
    page.wait_for_selector("#clip-warning:not([hidden])")
    warning = page.inner_text("#clip-warning")
    assert "Recording interrupted (module restarted)" in warning
    assert "Stream gap at 1.6 s: 2.4 s without video" in warning
    assert page.locator("#timeline .gap").count() == 1
    assert wait_until(lambda: page.evaluate("document.querySelector('#video').readyState") >= 2,
                      15)
    page.screenshot(path=str(artifacts / "interrupted.png"))
    # Another clip does not inherit the warning.
    page.click(f".clip[data-id='{others[0]}'] img")
    assert wait_until(lambda: page.is_hidden("#clip-warning"), 10)


def _saved(viewer: ViewerProcess, clip: str) -> int:
    """How many times the viewer's log says it saved a review of ``clip``."""
    return sum(" review.saved " in line and f"clip={clip}" in line
               for line in viewer.log().splitlines())


class _OtherPage(BaseHTTPRequestHandler):
    """Another local web page (another tool, another port)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>another local page</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the viewer's."""


def test_another_local_origin_cannot_change_a_review(browser: Any, viewer: ViewerProcess,
                                                     clip_ids: list[str]) -> None:
    clip = next(c for c in clip_ids if c.endswith("_ev-a4"))
    before = viewer.json("GET", f"/api/clips/{clip}")[1]["review_etag"]
    saved_before = _saved(viewer, clip)
    # A real page on another loopback port (served from loopback, as another local tool's
    # page would be: Chromium lets loopback pages reach loopback addresses).
    other = ThreadingHTTPServer(("127.0.0.1", 0), _OtherPage)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"http://127.0.0.1:{other.server_address[1]}/")
    for method, path, body in (
            ("POST", "/api/reviews", {"clips": [clip], "state": "cleaned"}),
            ("PUT", f"/api/reviews/{clip}", {"state": "cleaned", "etag": before})):
        tab.evaluate("""async ([url, method, body]) => {
            try {
                await fetch(url, {method, mode: "no-cors", credentials: "include",
                                  headers: {"Content-Type": "text/plain"},
                                  body: JSON.stringify(body)});
            } catch (e) { /* refused or opaque: either way nothing may change */ }
        }""", [viewer.url + path, method, body])
    context.close()
    other.shutdown()
    other.server_close()
    assert viewer.json("GET", f"/api/clips/{clip}")[1]["review_etag"] == before
    assert _saved(viewer, clip) == saved_before


def test_a_rebound_host_name_is_refused(browser: Any, viewer: ViewerProcess) -> None:
    context = browser.new_context()
    tab = context.new_page()
    response = tab.goto(f"http://{REBIND}:{viewer.port}/api/clips")
    assert response is not None and response.status == 421
    assert "misdirected" in tab.content()
    context.close()
