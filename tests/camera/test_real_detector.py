"""The whole chain with nothing faked: sample-world video -> GStreamer RTSP -> camera module
-> the real detector module (its own process, the shipped sample model) -> clip + sidecar.

The video is ``python -m samples generate-video --scenario spraying`` (a tag sprayed stroke by
stroke from 2 s on, keyframes every 2 s) with its ground-truth JSON. The sidecar's detections
are checked against that ground truth frame by frame; which source frame a clip starts at is
found by matching its first picture against the source video.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from local_run.processes import free_port, stop_process, wait_for_port
from local_run.rtsp_camera import RtspServer
from samples.world.encode import write_mp4
from samples.world.video import generate
from tests.camera.clips import iou, read_clip, sidecars
from tests.camera.conftest import Camera, twin
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "samples" / "models").glob("graffiti-sample-*.zip"))
SAMPLE_KEYFRAME_S = 2.0
PRE_ROLL_S = 2.0
SPRAYING_FPS = 25


@pytest.fixture(scope="module")
def spraying(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("spraying") / "spraying.mp4"
    subprocess.run([sys.executable, "-m", "samples", "generate-video", "--scenario", "spraying",
                    "--out", str(out), "--width", "640", "--height", "360"],
                   cwd=ROOT, check=True, capture_output=True, timeout=240)
    return out, json.loads(out.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One detector for the module's tests: each camera asks it afresh, as cameras do."""
    assert MODELS, "the product ships samples/models/graffiti-sample-<version>.zip"
    folder = tmp_path_factory.mktemp("detector")
    port = free_port()
    log = (folder / "detector.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "detector-module"), "--port", str(port), "--data-dir",
         str(folder / "data"), "--twin-wait", "1"], cwd=ROOT, stdout=log, stderr=log)
    try:
        wait_for_port(port, 60)
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _ready(url), 90), (folder / "detector.log").read_text()
        yield url
    finally:
        stop_process(process, timeout_s=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def first_frame_index(clip: Path, source: Path) -> int:
    """Which source frame the clip starts with (pixel match; the clip is a copy)."""
    with av.open(str(clip)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="gray").astype(np.int16)
    with av.open(str(source)) as container:
        errors = [float(np.abs(frame.to_ndarray(format="gray").astype(np.int16) - first).mean())
                  for frame in container.decode(video=0)]
    return int(np.argmin(errors))


def test_real_detector_and_sample_model_record_the_sprayed_tag(
        spraying: tuple[Path, dict[str, Any]], detector: str, tmp_path: Path,
        camera: Callable[[dict], Camera]) -> None:
    video, truth = spraying
    with urllib.request.urlopen(f"{detector}/model", timeout=5) as response:
        model = json.loads(response.read())
    with RtspServer(tmp_path, file=video) as rtsp:
        cam = camera(twin(rtsp.url, detector, tmp_path,
                          sampling={"request_timeout_s": 3},
                          # The sample model scores the unpainted spot ~0.55 before
                          # the tag appears and the tag itself 0.8-0.9.
                          trigger={"min_score": 0.7, "cooldown_s": 60},
                          recording={"post_roll_s": 2, "max_clip_s": 8}))
        # The sprayed tag stays until the video ends (and the server starts it over), so
        # the event is still running: its first part, cut at max_clip_s, is the clip to check.
        assert wait_until(lambda: list(cam.outbox.glob("*.json")), 30), cam.service.status()

    sidecar = sidecars(cam.outbox)[0]
    assert (sidecar.model.name, sidecar.model.version) == (model["name"], model["version"])
    clip = cam.outbox / f"{sidecar.stem}.mp4"
    facts = read_clip(clip)  # decodes to the end
    assert facts.codec == "h264" and facts.keyframe_first and facts.frames > 50

    fps = truth["fps"]
    offset = first_frame_index(clip, video)
    assert offset % round(SAMPLE_KEYFRAME_S * fps) == 0, "a clip starts at a keyframe"
    first_hit = min(f.t_s for f in sidecar.detections)
    assert PRE_ROLL_S - 0.25 <= first_hit <= PRE_ROLL_S + SAMPLE_KEYFRAME_S + 0.3
    appearance = truth["appearances"][0]
    assert offset / fps + first_hit >= appearance["first_time_s"] - 0.05, "seen before sprayed"

    matched = total = 0
    for frame_detections in sidecar.detections:
        index = offset + round(frame_detections.t_s * fps)
        boxes = [o["box"] for o in truth["frames"][index]["objects"]] if index < len(
            truth["frames"]) else []
        for detection in frame_detections.detections:
            total += 1
            matched += any(iou(detection.box, box) >= 0.3 for box in boxes)
    assert total >= 5 and matched / total >= 0.7, f"{matched}/{total} match the ground truth"


@pytest.fixture(scope="module")
def depot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parked carriage, quiet for 6 s (the scenario's first clean second played forth and
    back, so the picture never jumps), then the spraying scenario in 8 s: the tag grows from
    7 s to 10 s and stays to the end at 14 s, where a looped camera is back to the clean car."""
    frames, _ = generate("spraying", 0, 640, 360, SPRAYING_FPS, 8.0)
    scene = list(frames)
    lead_in = scene[:SPRAYING_FPS]
    quiet = (lead_in + lead_in[::-1]) * 3
    out = tmp_path_factory.mktemp("depot") / "depot.mp4"
    write_mp4(out, quiet + scene, 640, 360, SPRAYING_FPS, keyframe_seconds=SAMPLE_KEYFRAME_S,
              preset="ultrafast", bframes=0)
    return out


def test_an_idle_depot_camera_wakes_records_the_full_pre_roll_and_goes_back_to_keyframes(
        depot: Path, detector: str, tmp_path: Path, camera: Callable[[dict], Camera]) -> None:
    with RtspServer(tmp_path, loop=depot) as rtsp:
        cam = camera(twin(rtsp.url, detector, tmp_path,
                          sampling={"request_timeout_s": 3, "wake_score": 0.6,
                                    "idle_quiet_s": 2},
                          trigger={"min_score": 0.7, "cooldown_s": 60},
                          recording={"post_roll_s": 1.5, "max_clip_s": 30}))

        def sampling() -> dict[str, Any]:
            return cam.reported().get("sampling", {})

        assert wait_until(lambda: sampling().get("decodeMode") == "keyframes", 25), sampling()
        assert sampling()["gopS"] == pytest.approx(SAMPLE_KEYFRAME_S, abs=0.1)
        source = cam.service.sources[0]
        frames, packets = source.stats.frames, source.stats.packets
        assert wait_until(lambda: source.stats.packets - packets >= 2 * SPRAYING_FPS, 10)
        if cam.service.decode_mode.mode == "keyframes":  # not woken by the tag meanwhile
            decoded, read = source.stats.frames - frames, source.stats.packets - packets
            assert decoded <= read / (SAMPLE_KEYFRAME_S * SPRAYING_FPS) + 1, (decoded, read)

        assert wait_until(lambda: list(cam.outbox.glob("*.json")), 40), cam.service.status()
        assert sampling()["decodeModeChanges"] >= 2, "the sighting woke the camera"
        # Idle, woken, and idle again once quiet (the clip may be written before or after).
        assert wait_until(lambda: sampling().get("decodeMode") == "keyframes"
                          and sampling()["decodeModeChanges"] >= 3, 25), sampling()

    sidecar = sidecars(cam.outbox)[0]
    hits = [f.t_s for f in sidecar.detections]
    assert hits[0] >= PRE_ROLL_S - 0.25, f"pre-roll cut short: first sighting at {hits[0]} s"
    gaps = [b - a for a, b in zip(hits, hits[1:], strict=False)]
    assert min(gaps) < 0.5, f"never decoded in full after waking: {hits}"
