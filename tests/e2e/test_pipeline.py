"""The whole product at once: RTSP camera, the three modules and Azurite as real processes.

The simulated camera plays the sample world's demo video (75 s, 1280x720, 25 fps, ground truth
known) as a live camera on the wall clock, so the video position of any moment is known from
the clock alone, even across the camera's restart. The faults are timed into the video:

====== ==============================================================================
 3 s    model update 1.0.0 -> 1.1.0 through the detector's twin (during the first sighting)
 8 s    Azurite stopped (for 30 s: the first clip is written while it is down)
 20 s   the camera's threshold changed through its YAML twin file
 35.5 s RTSP server restarted (after the first sighting's post-roll, in the clean stretch)
 36.5 s detector killed (SIGKILL) and started again: it boots the updated model
 38 s   Azurite back
 75 s   end of the pass: the camera goes away, so the next loop starts no new event
====== ==============================================================================

and then every event's clip must be in blob storage exactly once, covering its sighting with
pre- and post-roll, with consistent metadata, decoding to the end.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import av
import pytest

from detector_module.updates.repository import ModelRepository
from detector_module.updates.unpack import unpack
from local_run.demo_video import ensure_demo_video, load_truth
from local_run.pipeline import Pipeline, PipelineSpec
from local_run.processes import free_port
from local_run.sightings import events_from_messages, score, sightings
from tests.detector.updates.server import PackageServer
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "samples" / "models"
PRE_ROLL_S = POST_ROLL_S = 5.0
TOLERANCE_S = 1.0  # confirmation takes 3 samples at 5 fps; clips start on a keyframe (2 s)
OLD, NEW = "1.0.0", "1.1.0"


def seed_repository(root: Path, version: str) -> None:
    """The train already runs model ``version``: installed and active in its repository."""
    repo = ModelRepository(root)
    repo.ensure()
    staged = repo.new_staging()
    package = unpack(MODELS_DIR / f"graffiti-sample-{version}.zip", staged, max_bytes=64 << 20)
    repo.install(staged, package.name, package.version)
    repo.set_active(package.name, package.version)


def demo_spec(run: Path, video: Path) -> PipelineSpec:
    """The demo video as a live camera after 20 s, every part on free ports, 5 s pre- and
    post-roll, the OpenVINO cache shared between runs."""
    return PipelineSpec(
        root=run, config_dir=ROOT / "config", video=video, start_delay_s=20.0,
        azurite_port=free_port(), detector_port=free_port(), camera_port=free_port(),
        overrides={"camera": {"recording": {"pre_roll_s": PRE_ROLL_S,
                                            "post_roll_s": POST_ROLL_S}},
                   "detector": {"inference": {"cache_dir": str(ROOT / "data" / "ov_cache")}}})


def at(pipeline: Pipeline, position_s: float) -> None:
    """Sleep until the camera shows ``position_s`` of the first pass."""
    assert pipeline.epoch is not None
    delay = pipeline.epoch + position_s - time.time()
    assert delay > -1.0, f"the schedule ran late: {-delay:.1f} s behind at {position_s} s"
    time.sleep(max(0.0, delay))


def camera_status(pipeline: Pipeline, section: str) -> dict[str, Any]:
    return pipeline.reported("camera").get(section, {})


def blob_facts(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    container = pipeline.container()
    return {b.name: {"metadata": b.metadata, "size": b.size}
            for b in container.list_blobs(include=["metadata"])}


def frames_decoded(data: bytes, path: Path) -> int:
    path.write_bytes(data)
    with av.open(str(path)) as clip:
        return sum(1 for _ in clip.decode(video=0))


def test_demo_video_through_the_pipeline_with_faults_loses_nothing(tmp_path: Path) -> None:
    video = ensure_demo_video(ROOT / "samples" / "generated" / "demo.mp4")
    truth = load_truth(video)
    run = tmp_path / "run"
    seed_repository(run / "models", OLD)
    new_zip = (MODELS_DIR / f"graffiti-sample-{NEW}.zip").read_bytes()
    pipeline = Pipeline(demo_spec(run, video))
    with PackageServer() as models:
        models.files["/graffiti-sample-1.1.0.zip"] = new_zip
        pipeline.start()
        try:
            _run_the_pass(pipeline, models.port, new_zip)
            _check_storage(pipeline, truth, tmp_path)
        finally:
            codes = pipeline.stop()
    assert codes == {"detector": 0, "uploader": 0, "camera": 0}, codes


def _run_the_pass(pipeline: Pipeline, models_port: int, new_zip: bytes) -> None:
    assert wait_until(lambda: camera_status(pipeline, "detector").get("status") == "up", 20), (
        f"the camera never reached the detector: {camera_status(pipeline, 'detector')}")
    assert camera_status(pipeline, "detector")["model"]["version"] == OLD
    failures_before = camera_status(pipeline, "detector")["failures"]

    at(pipeline, 3.0)
    pipeline.patch_twin("detector", {"model": {
        "version": NEW, "url": f"http://127.0.0.1:{models_port}/graffiti-sample-1.1.0.zip",
        "sha256": hashlib.sha256(new_zip).hexdigest()}})
    at(pipeline, 8.0)
    pipeline.azurite.stop()
    at(pipeline, 20.0)
    pipeline.patch_twin("camera", {"trigger": {"min_score": 0.6}})
    assert wait_until(lambda: camera_status(pipeline, "settings").get("inForce", {})
                      .get("trigger", {}).get("min_score") == 0.6, 5)
    at(pipeline, 33.0)
    model = pipeline.reported("detector").get("model", {})
    assert (model.get("version"), model.get("status")) == (NEW, "active"), model
    # The swap happened under load (5 requests/s) without one failed detection request.
    assert camera_status(pipeline, "detector")["failures"] == failures_before

    at(pipeline, 35.5)
    pipeline.camera.stop()
    pipeline.camera.start()
    at(pipeline, 36.5)
    pipeline.supervisor.restart("detector", crash=True)
    at(pipeline, 38.0)
    pipeline.azurite.start()
    at(pipeline, 75.0)
    pipeline.camera.stop()

    def settled() -> bool:
        written, uploaded = pipeline.clip_stems()
        return bool(written) and written == uploaded and pipeline.settled()

    assert wait_until(settled, 120, interval_s=0.5), (
        f"clips not all uploaded: {pipeline.reported('uploader').get('outbox')}")
    stream = camera_status(pipeline, "stream")["camera"]
    assert stream["reconnects"] >= 1  # it did see the camera go away and come back


def _check_storage(pipeline: Pipeline, truth: dict[str, Any], tmp_path: Path) -> None:
    camera_events = pipeline.messages("camera", "events")
    uploads = pipeline.messages("uploader", "clips")
    assert pipeline.epoch is not None
    events = events_from_messages(camera_events, uploads, pipeline.epoch)
    result = score(sightings(truth, POST_ROLL_S), events, pre_roll_s=PRE_ROLL_S,
                   post_roll_s=POST_ROLL_S, tolerance_s=TOLERANCE_S)
    assert not result.problems, "\n".join(result.problems) + f"\nevents: {events}"
    assert len(result.sightings) == 2 and len(events) == 2

    stems = [m["body"]["stem"] for m in uploads]
    assert len(stems) == len(set(stems)), f"a clip was uploaded twice: {Counter(stems)}"
    blobs = blob_facts(pipeline)
    uploaded_names = [b["name"] for m in uploads for b in m["body"]["blobs"]]
    assert sorted(uploaded_names) == sorted(blobs), "blob storage and the uploads disagree"
    container = pipeline.container()
    for message in uploads:
        body = message["body"]
        names = {Path(b["name"]).suffix: b["name"] for b in body["blobs"]}
        assert set(names) == {".mp4", ".json", ".jpg"}, names
        for name in names.values():
            meta = blobs[name]["metadata"]
            assert meta["event_id"] == body["eventId"] and meta["camera"] == body["cameraId"]
        sidecar = json.loads(container.download_blob(names[".json"]).readall())
        data = container.download_blob(names[".mp4"]).readall()
        assert sidecar["event_id"] == body["eventId"]
        assert sidecar["video"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert sidecar["video"]["bytes"] == len(data) == blobs[names[".mp4"]]["size"]
        assert float(blobs[names[".mp4"]]["metadata"]["max_score"]) == pytest.approx(
            sidecar["max_score"], abs=1e-4)
        expected = sidecar["video"]["duration_s"] * sidecar["video"]["fps"]
        assert frames_decoded(data, tmp_path / "clip.mp4") >= expected - 2, (
            f"{names['.mp4']} does not decode to its end")
    # The second sighting came after the detector's restart: it ran the updated model.
    last = json.loads(container.download_blob(
        next(b["name"] for b in uploads[-1]["body"]["blobs"] if b["name"].endswith(".json"))
    ).readall())
    assert last["model"]["version"] == NEW
    assert not any(pipeline.outbox.glob("*.mp4")), "clips left in the outbox"
