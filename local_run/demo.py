"""``graffiti-edge up`` and ``graffiti-edge demo``: the modules running locally, end to end.

What a new user sees first, so every step says what it does and what came of it. The demo runs
the whole product on this machine: the sample video played by a simulated RTSP camera, the
three modules as separate processes with YAML twin files, and Azurite standing in for Blob
Storage on IoT Edge. ``data/demo/outbox`` and ``data/demo/azurite`` are kept between runs, as
a train's disk is: a clip left by an interrupted run is uploaded by the next one.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from contracts.messages import ClipUploaded, ClipWritten, EventStarted
from contracts.outputs import Output
from local_run.demo_video import DEMO_VIDEO, ensure_demo_video, load_truth
from local_run.narrator import Narrator
from local_run.outputs import of_type
from local_run.pipeline import Pipeline, PipelineSpec
from local_run.rtsp_camera import RtspServer
from local_run.sightings import events_from_messages, score, sightings
from local_run.supervisor import MODULE_ORDER, ModuleProcess, Supervisor

# Kept between demo runs, as on a train; everything else under data/demo is per run.
KEPT = ("outbox", "azurite")
WARM_UP_S = 12.0  # modules load and the camera connects while the first frame is shown
SETTLE_S = 90.0  # after the pass: the last event's post-roll, clip writing and upload
STEPS = 6


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _status(module: ModuleProcess) -> str:
    reported = module.reported()
    settings = reported.get("settings", {})
    link = reported.get("module", {}).get("link", "?")
    return (f"  {module.name:<9} pid {module.process.pid:<7} link={link} "
            f"settings={settings.get('status', '?')} log={module.log_file}")


def _wait(predicate: Callable[[], bool], timeout_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT both stop the command cleanly, even when it was started with SIGINT
    ignored (as background jobs of a shell are)."""
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


def run_up(modules: list[str], *, config_dir: Path, data_root: Path,
           duration_s: float | None) -> int:
    """Run modules until Ctrl-C (or ``duration_s``); every process ends with this command."""
    _stop_on_signals()
    supervisor = Supervisor(modules, config_dir=config_dir, data_root=data_root)
    try:
        supervisor.start()
        supervisor.wait_ready()
        say("modules running (Ctrl-C stops them all):")
        for module in supervisor.running:
            say(_status(module))
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
            for module in supervisor.running:
                if module.process.poll() is not None:
                    say(f"module {module.name} exited with {module.process.returncode}; "
                        f"see {module.log_file}")
                    return 1
    except KeyboardInterrupt:
        say("stopping")
    finally:
        codes = supervisor.stop()
        say("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()))
    return 0


def simulate_camera(video: Path, *, port: int, mount: str, folder: Path) -> int:
    """Serve ``video`` as a live RTSP camera until Ctrl-C."""
    _stop_on_signals()
    if video == DEMO_VIDEO:
        ensure_demo_video(video, _video_progress)
    if not video.exists():
        say(f"simulate-camera: {video} does not exist")
        return 2
    camera = RtspServer(folder, loop=video.resolve(), port=port, mount=mount)
    try:
        camera.start()
        say(f"camera {camera.url} playing {video} in a loop (Ctrl-C stops it; log "
            f"{camera.log_file})")
        while camera.process is not None and camera.process.poll() is None:
            time.sleep(0.5)
        say(f"the RTSP server exited; see {camera.log_file}")
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        say(f"simulate-camera: {exc}")
        return 1
    finally:
        camera.stop()


@dataclass
class DemoOptions:
    config_dir: Path = Path("config")
    data_root: Path = Path("data")
    video: Path = DEMO_VIDEO
    duration_s: float | None = None  # one pass of the video; for a real camera, 75 s
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def _fresh_root(root: Path) -> None:
    if root.exists():
        for child in root.iterdir():
            if child.name not in KEPT:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _video_progress(done: int, total: int) -> None:
    width = 30
    filled = round(width * done / total)
    sys.stdout.write(f"\r      rendering {'#' * filled}{'.' * (width - filled)} "
                     f"{100 * done // total:3d}%")
    if done == total:
        sys.stdout.write("\n")
    sys.stdout.flush()


def _show_live_settings(pipeline: Pipeline) -> None:
    """A twin edit applied live, and a bad one rejected while the last good value stays."""

    def trigger() -> dict[str, Any]:
        return pipeline.reported("camera").get("settings", {}).get("inForce", {}).get(
            "trigger", {})

    twin = pipeline.twin_path("camera")
    original = pipeline.docs["camera"].get("trigger", {}).get("min_score", 0.5)
    say(f"      operator sets trigger.min_score to 7 in {twin} (scores are 0..1)")
    pipeline.patch_twin("camera", {"trigger": {"min_score": 7}})
    _wait(lambda: pipeline.reported("camera").get("settings", {}).get("status") == "rejected",
          10)
    rejected = pipeline.reported("camera").get("settings", {}).get("rejected") or {}
    for error in rejected.get("errors", []):
        say(f"      rejected: {error['path']} = {error.get('value')!r}: {error['reason']}")
    say(f"      still in force: trigger.min_score = {trigger().get('min_score')}")
    pipeline.patch_twin("camera", {"trigger": {"min_score": original}})
    took = _wait(lambda: pipeline.reported("camera").get("settings", {}).get("status")
                 == "applied" and trigger().get("min_score") == original, 10)
    say(f"      operator puts back {original}: applied live, no restart, in {took:.2f} s"
        if took is not None else "      NOT applied within 10 s: see the camera log")


def _watch(pipeline: Pipeline, narrator: Narrator, until: float) -> None:
    start = pipeline.epoch or time.time()
    next_progress = start + 10
    total = until - start
    while time.time() < until:
        narrator.poll()
        if time.time() >= next_progress:
            next_progress += 10
            narrator.line("demo", f"{min(total, time.time() - start):.0f} of {total:.0f} s "
                                  "watched")
        for module in pipeline.supervisor.running:
            if module.process.poll() is not None:
                raise RuntimeError(f"module {module.name} exited with "
                                   f"{module.process.returncode}; see {module.log_file}")
        time.sleep(0.25)
    narrator.poll()


def _uploads(pipeline: Pipeline) -> list[ClipUploaded]:
    return of_type(pipeline.sent("uploader", Output.CLIPS), ClipUploaded)


def _download(pipeline: Pipeline, target: Path) -> list[Path]:
    """This run's clips from blob storage into ``target`` (what an operator would fetch)."""
    container = pipeline.container()
    saved = []
    target.mkdir(parents=True, exist_ok=True)
    for message in _uploads(pipeline):
        for blob in message.blobs:
            path = target / Path(blob.name).name
            path.write_bytes(container.download_blob(blob.name).readall())
            saved.append(path)
    return saved


def _summary(pipeline: Pipeline, options: DemoOptions, clips_dir: Path,
             camera_off_s: float) -> None:
    uploads = _uploads(pipeline)
    camera = pipeline.sent("camera", Output.EVENTS)
    say(f"  events: {len(of_type(camera, EventStarted))}   clips written: "
        f"{len(of_type(camera, ClipWritten))}   clips uploaded: {len(uploads)}")
    if pipeline.camera is not None and pipeline.epoch is not None and options.video.exists():
        truth = load_truth(options.video)
        post_roll = float(pipeline.docs["camera"].get("recording", {}).get("post_roll_s", 5))
        pre_roll = float(pipeline.docs["camera"].get("recording", {}).get("pre_roll_s", 5))
        found = events_from_messages(pipeline.messages("camera", Output.EVENTS),
                                     pipeline.messages("uploader", Output.CLIPS),
                                     pipeline.epoch)
        result = score(sightings(truth, post_roll), found, pre_roll_s=pre_roll,
                       post_roll_s=post_roll, tolerance_s=1.0, camera_off_s=camera_off_s)
        say(f"  ground truth: {len(truth['appearances'])} graffiti appearances in "
            f"{len(result.sightings)} sightings; {len(result.matched)} found")
        for problem in result.problems:
            say(f"    - {problem}")
    say(f"  blobs in container {pipeline.container_name} (Azurite, data in "
        f"{pipeline.azurite.location}):")
    for message in uploads:
        for blob in message.blobs:
            say(f"    {blob.name}  ({blob.bytes:,} bytes)")
    if uploads:
        say(f"  copies of this run's clips: {clips_dir}/ (open the .mp4 in a browser)")
    # As the user can type it: `make demo` runs .venv/bin/graffiti-edge, not on their PATH.
    command = sys.argv[0] if Path(sys.argv[0]).name == "graffiti-edge" else "graffiti-edge"
    say("  look at them:")
    say(f"    {command} viewer --demo        # the operator page: http://127.0.0.1:8090/")
    say(f"    {command} clips list --demo    # the same, in the terminal")
    say(f"  module logs: {pipeline.root / 'logs'}/; twins used: {pipeline.twins_dir}/")


def _twin_problems(config_dir: Path) -> list[str]:
    """Every error in the twin files the demo starts from, with file and line."""
    from config.check import check_file

    return [str(error) for name in MODULE_ORDER
            if (path := config_dir / f"{name}.yaml").exists()
            for error in check_file(path, name)]


def _prepare_video(video: Path) -> float:
    """Step 1: the video, rendered on first use; returns the length of one pass."""
    say(f"[1/{STEPS}] the demo video: {video}")
    if not video.exists():
        say("      first run: rendering it from the sample world's seed (takes a minute or two)")
    ensure_demo_video(video, _video_progress)
    truth = load_truth(video)
    pass_s = float(truth["frame_count"] / truth["fps"])
    say(f"      {pass_s:.0f} s, {truth['width']}x{truth['height']} at {truth['fps']} fps, "
        f"{len(truth['appearances'])} graffiti appearances")
    return pass_s


def _settle(pipeline: Pipeline, narrator: Narrator) -> None:
    """Step 5: until the last clip is in blob storage, still saying what happens."""
    say(f"[5/{STEPS}] waiting for the last event to end and its clip to reach blob storage")

    def settled() -> bool:
        narrator.poll()
        return pipeline.settled()

    if _wait(settled, SETTLE_S) is None:
        say(f"      not everything within {SETTLE_S:.0f} s; what is left stays in "
            f"{pipeline.outbox} and is uploaded on the next run")


def run_demo(options: DemoOptions) -> int:
    """The sample video through the whole product, one pass, then a summary."""
    _stop_on_signals()
    problems = _twin_problems(options.config_dir)
    if problems:
        say(f"the twin files in {options.config_dir}/ have errors; nothing was started:")
        for problem in problems:
            say(f"  {problem}")
        return 2
    root = options.data_root / "demo"
    _fresh_root(root)
    pass_s = _prepare_video(options.video)
    pipeline = Pipeline(PipelineSpec(root=root, config_dir=options.config_dir,
                                     video=options.video, start_delay_s=WARM_UP_S,
                                     overrides=options.overrides))
    narrator = Narrator(pipeline, say)
    codes: dict[str, int] = {}
    interrupted = False
    say(f"[2/{STEPS}] starting (twin files in {pipeline.twins_dir}/)")
    try:
        pipeline.start(on_step=lambda text: say(f"      {text}"))
        for module in pipeline.supervisor.running:
            say(_status(module))
        say(f"[3/{STEPS}] live settings through the camera's twin file, while it warms up")
        _show_live_settings(pipeline)
        duration = options.duration_s or pass_s
        say(f"[4/{STEPS}] watching {'one pass of the video' if pipeline.camera else 'the camera'}"
            f" ({duration:.0f} s; Ctrl-C stops early and keeps every clip)")
        start = pipeline.epoch or time.time()
        _watch(pipeline, narrator, start + duration)
        if pipeline.camera is not None:
            pipeline.camera.stop()  # the end of the pass: the loop would start it again
            narrator.line("demo", "end of the pass: the simulated camera is switched off")
        _settle(pipeline, narrator)
        clips_dir = root / "clips"
        _download(pipeline, clips_dir)
        say("summary:")
        _summary(pipeline, options, clips_dir, camera_off_s=duration)
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping; a clip being recorded is finished and kept in "
            f"{pipeline.outbox} for the next run")
    except (RuntimeError, TimeoutError, OSError) as exc:
        say(f"demo failed: {exc}")
        codes = {"demo": 1}
    finally:
        codes = {**pipeline.stop(), **codes}
        say(f"[6/{STEPS}] stopped: " + ", ".join(f"{n} exit {c}" for n, c in codes.items())
            + "; the camera and Azurite too")
    return 0 if not interrupted and all(code == 0 for code in codes.values()) else 1
