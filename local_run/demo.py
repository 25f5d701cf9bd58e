"""``graffiti-edge up`` and ``graffiti-edge demo``: the modules running locally, end to end.

What a new user sees first, so every step says what it does and what came of it.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edge_link.local import invoke_local_method
from local_run.supervisor import ModuleProcess, Supervisor

NOT_BUILT_YET = [
    "the full pipeline in this demo (a local RTSP camera playing the sample video, clips, "
    "uploads to Azurite); the camera module runs here without a camera and says so",
    "the operator clip viewer",
]
# A scene the demonstration model never saw in training (see samples/evaluate.py).
DEMO_SCENE_SEED = 900_000_007


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


def _get_json(url: str, body: bytes | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _score_sample(port: int) -> None:
    """Render a held-out synthetic scene with graffiti and ask the running detector about it."""
    import cv2

    from samples.world.scene import still

    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return _get_json(f"{base}/readyz", timeout_s=2).get("status") == "ready"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    took = _wait(ready, 120)
    if took is None:
        say("      the detector did not load its model within 120 s: see its log")
        return
    shot = still(DEMO_SCENE_SEED, graffiti_count=1)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(shot.image, cv2.COLOR_RGB2BGR))
    answer = _get_json(f"{base}/score?camera_id=demo", jpeg.tobytes())
    model = answer["model"]
    say(f"      model {model['name']} {model['version']} ready after {took:.1f} s; "
        f"inference {answer['inference_ms']:.1f} ms")
    height, width = shot.image.shape[:2]
    for truth in shot.objects:
        say(f"      painted:  graffiti      at x {truth.box[0]:.0f}-{truth.box[2]:.0f}, "
            f"y {truth.box[1]:.0f}-{truth.box[3]:.0f} px")
    for found in answer["detections"]:
        x1, y1, x2, y2 = found["box"]
        say(f"      detected: {found['label']} {found['score']:.2f} at x {x1 * width:.0f}-"
            f"{x2 * width:.0f}, y {y1 * height:.0f}-{y2 * height:.0f} px")
    if not answer["detections"]:
        say("      detected: nothing")


def _stop_on_sigterm() -> None:
    def _raise(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def run_up(modules: list[str], *, config_dir: Path, data_root: Path,
           duration_s: float | None) -> int:
    """Run modules until Ctrl-C (or ``duration_s``); every process ends with this command."""
    _stop_on_sigterm()
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


def run_demo(*, config_dir: Path, data_root: Path) -> int:
    """Start the modules, change a threshold live, reject a bad value, call a method, stop."""
    _stop_on_sigterm()
    demo_root = data_root / "demo"
    twins = demo_root / "twins"
    shutil.rmtree(demo_root, ignore_errors=True)
    twins.mkdir(parents=True)
    for name in ("camera", "detector", "uploader"):
        shutil.copy(config_dir / f"{name}.yaml", twins / f"{name}.yaml")
    supervisor = Supervisor(["detector", "uploader", "camera"], config_dir=twins,
                            data_root=demo_root)
    say("[1/6] starting the three modules in local mode (YAML files stand in for the twins)")
    try:
        supervisor.start()
        supervisor.wait_ready()
        for module in supervisor.running:
            say(_status(module))
        camera = next(m for m in supervisor.running if m.name == "camera")
        twin_file = twins / "camera.yaml"
        doc = yaml.safe_load(twin_file.read_text())

        say("[2/6] operator raises the camera's trigger.min_score to 0.7 in its twin file")
        doc["trigger"]["min_score"] = 0.7
        twin_file.write_text(yaml.safe_dump(doc))
        took = _wait(lambda: camera.reported().get("settings", {}).get("inForce", {})
                     .get("trigger", {}).get("min_score") == 0.7, 10)
        say(f"      applied live, no restart, in {took:.2f} s" if took is not None
            else "      NOT applied within 10 s: see the camera log")

        say("[3/6] operator mistypes it as 7 (scores are 0..1)")
        doc["trigger"]["min_score"] = 7
        twin_file.write_text(yaml.safe_dump(doc))
        _wait(lambda: camera.reported().get("settings", {}).get("status") == "rejected", 10)
        settings = camera.reported().get("settings", {})
        for error in (settings.get("rejected") or {}).get("errors", []):
            say(f"      rejected: {error['path']} = {error.get('value')!r}: {error['reason']}")
        in_force = settings.get("inForce", {}).get("trigger", {}).get("min_score")
        say(f"      still in force: trigger.min_score = {in_force}")

        say("[4/6] the detector scores a synthetic carriage it never saw in training (POST /score)")
        detector_twin = yaml.safe_load((twins / "detector.yaml").read_text()) or {}
        _score_sample(int(detector_twin.get("server", {}).get("port", 8080)))

        say("[5/6] direct method `ping` to each module (the local stand-in for IoT Hub methods)")
        for module in supervisor.running:
            status, payload = invoke_local_method(module.data_dir, "ping", None, 10)
            say(f"      {module.name}: {status} uptime {payload.get('uptime_s')} s")
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        codes = supervisor.stop()
        say("[6/6] stopped: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()))
    say(f"reported properties and outputs are under {demo_root}/<module>/")
    say("not built yet: " + "; ".join(NOT_BUILT_YET))
    return 0 if all(code == 0 for code in codes.values()) else 1
