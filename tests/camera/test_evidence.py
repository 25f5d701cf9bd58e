"""Evidence that survives a kill -9, with the times the camera captured it.

The GStreamer server runs as a live camera (``--loop``): frame ``i`` of the looped video goes
out at ``epoch + k * duration + i / fps`` by the wall clock. A clip is copied packet for
packet, so each of its frames decodes to exactly one frame of the source (up to the texture's
repeat, which the claimed time settles), and its true capture time follows from the frame
alone: the tests hold the sidecar's times and the loss at a kill against that.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.clip import ClipSidecar
from local_run.camera_process import CameraProcess
from local_run.fake_detector import FakeDetector
from local_run.rtsp_camera import RtspServer
from tests.camera.clips import frame_index, read_clip, sidecars, small_frames
from tests.camera.conftest import Camera, twin
from tests.support.polling import wait_until
from tests.support.rtsp import write_marker_video
from tests.support.teardown import stopped_at_teardown

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 24.0
FPS = 25
SIGHTING = (4.0, 20.0)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    video = write_marker_video(tmp_path_factory.mktemp("loop") / "loop.mp4", DURATION_S,
                               [SIGHTING], keyframe_s=1.0)
    return video, small_frames(video)


@dataclass(frozen=True)
class Live:
    """The looped video served as a live camera: frame 0 went out at ``epoch`` (wall time)."""

    url: str
    source: list[Any]
    epoch: float


@pytest.fixture
def live(tmp_path: Path, looped: tuple[Path, list[Any]]) -> Iterator[Live]:
    video, source = looped
    epoch = time.time() + 1.0
    with RtspServer(tmp_path, loop=video, epoch=epoch) as rtsp:
        yield Live(rtsp.url, source, epoch)


def true_time(frame: Any, claimed: float, source: list[Any], epoch: float) -> float:
    """The wall time the looped camera showed ``frame`` at, nearest the time claimed for it
    (the candidates are 6.4 s apart, the texture's repeat, so the claim only picks one)."""
    loop = math.floor((claimed - epoch) / DURATION_S)
    candidates = [epoch + k * DURATION_S + i / FPS for i in frame_index(frame, source)
                  for k in (loop - 1, loop, loop + 1)]
    return min(candidates, key=lambda c: abs(c - claimed))


def first_and_last_truth(clip: Path, sidecar: ClipSidecar, source: list[Any],
                         epoch: float) -> tuple[float, float]:
    frames = small_frames(clip)
    return (true_time(frames[0], sidecar.start_utc.timestamp(), source, epoch),
            true_time(frames[-1], sidecar.end_utc.timestamp(), source, epoch))


@pytest.fixture
def camera_process(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], CameraProcess]]:
    def start(doc: dict[str, Any]) -> CameraProcess:
        config = tmp_path / "camera.yaml"
        config.write_text(yaml.safe_dump(doc))
        return CameraProcess(config, tmp_path / "data").start()

    yield from stopped_at_teardown(start)


def plays_in_chromium(clip: Path) -> dict[str, Any]:
    """Play ``clip`` to its end in headless Chromium (served over HTTP, as the viewer
    does); its duration, where playback ended and the picture size."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    handler = partial(SimpleHTTPRequestHandler, directory=str(clip.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            return page.evaluate("""async (src) => {
                const v = document.createElement('video');
                v.muted = true;
                document.body.appendChild(v);
                const until = (name) => new Promise((ok, bad) => {
                    v.addEventListener(name, ok, {once: true});
                    v.onerror = () => bad(new Error('video error: ' + v.error.message));
                });
                const loaded = until('loadeddata');
                v.src = src;
                await loaded;
                v.playbackRate = 8;
                const ended = until('ended');
                await v.play();
                await ended;
                return {duration: v.duration, ended: v.currentTime, width: v.videoWidth};
            }""", f"http://127.0.0.1:{server.server_port}/{clip.name}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_camera_killed_mid_event_recovers_its_clip_at_the_next_start(
        tmp_path: Path, live: Live, fake_detector: FakeDetector,
        camera_process: Callable[[dict[str, Any]], CameraProcess]) -> None:
    doc = twin(live.url, fake_detector.url, tmp_path, recording={"max_clip_s": 60})
    first = camera_process(doc)
    assert wait_until(lambda: first.messages("event.started"), 30), "no event started"
    (started,) = first.messages("event.started")
    # Three seconds into the sighting: the event is running, its clip not written.
    time.sleep(max(0.0, live.epoch + SIGHTING[0] + 3.0 - time.time()))
    killed_at = time.time()
    first.kill()
    outbox = Path(doc["recording"]["outbox_dir"])
    assert not list(outbox.glob(f"{started['eventId']}*.json"))
    second = camera_process(doc)
    clip_json = outbox / f"{started['eventId']}.json"
    assert wait_until(clip_json.exists, 30), "the interrupted clip was not recovered"
    assert wait_until(lambda: second.messages("event.ended"), 5)
    sidecar = ClipSidecar.model_validate_json(clip_json.read_text())
    clip = outbox / f"{sidecar.stem}.mp4"
    assert sidecar.interrupted and sidecar.interruption is not None
    assert "killed or crashed" in sidecar.interruption.reason
    assert sidecar.interruption.last_recorded_utc == sidecar.end_utc
    ended = next(e for e in second.messages("event.ended")
                 if e["eventId"] == started["eventId"])
    assert ended["reason"].startswith("interrupted: ")
    facts = read_clip(clip)  # decodes every frame, to the last one
    assert facts.codec == "h264" and facts.keyframe_first
    assert sidecar.video.bytes == clip.stat().st_size and sidecar.thumbnail
    assert facts.marker_from_s is not None and sidecar.detections
    first_true, last_true = first_and_last_truth(clip, sidecar, live.source, live.epoch)
    lost = killed_at - last_true
    assert -0.1 <= lost <= 2.0, f"{lost:.2f} s of video lost before the kill"
    assert abs(sidecar.start_utc.timestamp() - first_true) <= 0.1
    assert abs(sidecar.end_utc.timestamp() - last_true) <= 0.1
    played = plays_in_chromium(clip)
    assert played["width"] == 640
    assert played["ended"] == pytest.approx(facts.duration_s, abs=0.1)
    recording = json.loads((tmp_path / "data" / "reported.json").read_text())["recording"]
    assert recording["recoveredClips"] >= 1 and recording["clipsDropped"] == 0


def test_clip_times_are_the_capture_times(
        tmp_path: Path, live: Live, fake_detector: FakeDetector,
        camera: Callable[[dict[str, Any]], Camera]) -> None:
    cam = camera(twin(live.url, fake_detector.url, tmp_path, recording={"max_clip_s": 5}))
    assert wait_until(lambda: len(list(cam.outbox.glob("*.json"))) >= 2, 30), \
        cam.service.status()
    errors = []
    for sidecar in sidecars(cam.outbox)[:2]:
        first_true, last_true = first_and_last_truth(cam.outbox / f"{sidecar.stem}.mp4",
                                                     sidecar, live.source, live.epoch)
        errors += [sidecar.start_utc.timestamp() - first_true,
                   sidecar.end_utc.timestamp() - last_true]
    assert max(map(abs, errors)) <= 0.1, [round(e, 3) for e in errors]
