"""Evidence lost when the camera module is killed mid-event, and what keeping it costs.

Two parts, one run:

1. **Kills.** A GStreamer server plays a video as a live camera (``--loop``: frame ``i`` goes
   out at ``epoch + k * duration + i / 25`` by the wall clock) whose frames carry their index
   as a barcode; the fake detector (its own process) "sees" graffiti all the time, so the
   camera module (its own process, local mode) is always in an event. It is SIGKILLed
   ``--kills`` times at random moments inside events and started again on the same folders.
   For each kill: the seconds between the last frame of the recovered clip (its true capture
   time, from its barcode) and the kill, and the clock error of the clip's start and end
   times against the true capture times of its first and last frames.
2. **Cost.** A live 1920x1080 25 fps H.264 stream at 4 Mbit/s (x264 superfast), the fake
   detector seeing graffiti 10 s in every 40; this tree's camera module (progressive
   recording) and ``--baseline``'s (clips from memory, git archive of that commit) run side
   by side on the same stream for ``--minutes``: CPU, bytes written to the disk (``/proc``
   write_bytes less cancelled_write_bytes: a journal removed before write-back costs
   nothing) and clip sizes.

    python bench/crash.py [--kills 5] [--minutes 3] [--baseline 1f62efa]

Targets (issue 15): seconds lost per kill <= 2 s at p95; camera CPU <= 1.1x the baseline;
bytes per clip (the clip files) within 5 % of the baseline's.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import out, table  # noqa: E402
from contracts.clip import ClipSidecar  # noqa: E402
from infra.stats import percentile  # noqa: E402
from local_run.camera_process import CameraProcess  # noqa: E402
from local_run.processes import free_port, stop_process, wait_for_port  # noqa: E402
from local_run.rtsp_camera import RtspServer  # noqa: E402
from samples.world.encode import write_mp4  # noqa: E402

FPS = 25
LOOP_S = 60.0
BITS = 16
CELL = 24  # barcode cell, pixels
WARM_UP_S = 20.0
DEFAULT_BASELINE = "1f62efa"  # the last commit before progressive recording


def counter_video(path: Path, seconds: float) -> Path:
    """640x360 H.264, a keyframe a second, a moving texture, and each frame's index as a
    16-cell barcode along the top (white = 1), which survives the encoder."""
    rng = np.random.default_rng(3)
    texture = rng.integers(50, 200, size=(360, 1280, 3), dtype=np.uint8)

    def frames() -> Iterator[np.ndarray]:
        for index in range(round(seconds * FPS)):
            shift = (index * 4) % 640
            image = np.ascontiguousarray(texture[:, shift:shift + 640])
            for bit in range(BITS):
                value = 255 if index >> bit & 1 else 0
                image[:CELL, bit * CELL:(bit + 1) * CELL] = value
            yield image

    write_mp4(path, frames(), 640, 360, FPS, keyframe_seconds=1.0, preset="ultrafast", crf=26,
              bframes=0)
    return path


def frame_number(image: np.ndarray) -> int:
    centre = CELL // 2
    return sum(1 << bit for bit in range(BITS)
               if image[centre, bit * CELL + centre].mean() > 128)


def first_and_last_numbers(clip: Path) -> tuple[int, int]:
    with av.open(str(clip)) as container:
        numbers = [frame_number(f.to_ndarray(format="rgb24"))
                   for f in container.decode(video=0)]
    return numbers[0], numbers[-1]


def true_time(number: int, claimed: float, epoch: float) -> float:
    """Wall time the looped camera sent frame ``number`` at, in the pass nearest ``claimed``."""
    k = math.floor((claimed - epoch) / LOOP_S)
    return min((epoch + j * LOOP_S + number / FPS for j in (k - 1, k, k + 1)),
               key=lambda c: abs(c - claimed))


class Camera(CameraProcess):
    """A camera module process whose CPU and disk writes are read from /proc."""

    def usage(self) -> tuple[float, int]:
        """CPU seconds and bytes written to the disk so far."""
        assert self.popen is not None
        stat = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        io = dict(line.split(": ") for line in
                  Path(f"/proc/{self.popen.pid}/io").read_text().splitlines())
        return cpu, int(io["write_bytes"]) - int(io["cancelled_write_bytes"])


def start_fake_detector(folder: Path, on: float, off: float) -> tuple[subprocess.Popen[bytes],
                                                                      str]:
    port = free_port()
    log = (folder / "detector.log").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "local_run.fake_detector", "--port", str(port), "--on", str(on),
         "--off", str(off)], cwd=ROOT, stdout=log, stderr=log,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_for_port(port, 60)
    return popen, f"http://127.0.0.1:{port}"


def camera_twin(url: str, detector: str, outbox: Path, **recording: Any) -> dict[str, Any]:
    return {"identity": {"train_id": "bench", "camera_id": "cam-bench"},
            "stream": {"detect_url": url},
            "sampling": {"detector_url": detector, "detect_fps": 5},
            "trigger": {"cooldown_s": 5},
            "recording": {"pre_roll_s": 5, "post_roll_s": 5, "outbox_dir": str(outbox),
                          **recording}}


def wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def run_kills(folder: Path, count: int, rng: random.Random) -> list[dict[str, float]]:
    video = counter_video(folder / "counter.mp4", LOOP_S)
    epoch = time.time() + 1.0
    rtsp = RtspServer(folder, loop=video, epoch=epoch).start()
    detector, detector_url = start_fake_detector(folder, 1e6, 1)
    outbox = folder / "kills-outbox"
    config = folder / "kills.yaml"
    config.write_text(yaml.safe_dump(camera_twin(rtsp.url, detector_url, outbox,
                                                 max_clip_s=60)))
    camera = Camera(config, folder / "kills-camera", twin_wait_s=1)
    kills: list[tuple[str, float]] = []
    try:
        for _ in range(count):
            started = len(camera.messages("event.started"))
            camera.start()
            if not wait_for(lambda n=started: len(camera.messages("event.started")) > n, 30):
                raise RuntimeError("no event started; see kills-camera.log")
            event_id = camera.messages("event.started")[started]["eventId"]
            time.sleep(rng.uniform(1.0, 8.0))  # a random moment inside the event
            kills.append((event_id, time.time()))
            camera.kill()
        camera.start()
        wait_for(lambda: all(_recovered(outbox, e) for e, _ in kills), 60)
    finally:
        camera.stop()
        stop_process(detector)
        rtsp.stop()
    return [_measure(outbox, event_id, killed_at, epoch) for event_id, killed_at in kills]


def _recovered(outbox: Path, event_id: str) -> ClipSidecar | None:
    for path in outbox.glob(f"{event_id}*.json"):
        sidecar = ClipSidecar.model_validate_json(path.read_text())
        if sidecar.interrupted:
            return sidecar
    return None


def _measure(outbox: Path, event_id: str, killed_at: float, epoch: float) -> dict[str, float]:
    sidecar = _recovered(outbox, event_id)
    if sidecar is None:
        return {"lost_s": math.inf, "start_err_s": math.nan, "end_err_s": math.nan}
    first, last = first_and_last_numbers(outbox / f"{sidecar.stem}.mp4")
    start, end = sidecar.start_utc.timestamp(), sidecar.end_utc.timestamp()
    true_first, true_last = true_time(first, start, epoch), true_time(last, end, epoch)
    return {"lost_s": killed_at - true_last, "start_err_s": start - true_first,
            "end_err_s": end - true_last}


def run_cost(folder: Path, minutes: float, baseline: str) -> dict[str, dict[str, float]]:
    base_tree = folder / "baseline"
    base_tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
    rtsp = RtspServer(folder, live="1920x1080@25", pattern="snow", preset="superfast").start()
    detector, detector_url = start_fake_detector(folder, 10, 30)
    cameras: dict[str, Camera] = {}
    try:
        for name, tree in (("progressive", ROOT), ("baseline", base_tree)):
            config = folder / f"{name}.yaml"
            config.write_text(yaml.safe_dump(camera_twin(rtsp.url, detector_url,
                                                         folder / f"{name}-outbox")))
            cameras[name] = Camera(config, folder / f"{name}-camera", tree=tree,
                                   twin_wait_s=1).start()
        time.sleep(WARM_UP_S)
        before = {n: c.usage() for n, c in cameras.items()}
        clips0 = {n: _clips(folder / f"{n}-outbox") for n in cameras}
        started = time.monotonic()
        time.sleep(minutes * 60)
        elapsed = time.monotonic() - started
        after = {n: c.usage() for n, c in cameras.items()}
        clips1 = {n: _clips(folder / f"{n}-outbox") for n in cameras}
    finally:
        for camera in cameras.values():
            camera.stop()
        stop_process(detector)
        rtsp.stop()
    return {n: _cost(folder / f"{n}-outbox", before[n], after[n], elapsed,
                     clips1[n] - clips0[n]) for n in cameras}


def _clips(outbox: Path) -> int:
    return len(list(outbox.glob("*.json")))


def _cost(outbox: Path, before: tuple[float, int], after: tuple[float, int], elapsed: float,
          clips_during: int) -> dict[str, float]:
    """CPU and disk writes over the measured window; clip sizes over every clip written."""
    sidecars = [ClipSidecar.model_validate_json(p.read_text()) for p in outbox.glob("*.json")]
    seconds = sum(s.video.duration_s for s in sidecars)
    during = max(1, clips_during)
    return {"cores": (after[0] - before[0]) / elapsed, "written": after[1] - before[1],
            "clips": len(sidecars), "clip_bytes": sum(s.video.bytes for s in sidecars)
            / max(1, len(sidecars)),
            "bytes_per_s": sum(s.video.bytes for s in sidecars) / seconds if seconds else 0.0,
            "written_per_clip": (after[1] - before[1]) / during}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="commit whose camera module is today's (clips from memory)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    try:
        kills = run_kills(folder, args.kills, random.Random(args.seed)) if args.kills else []
        cost = run_cost(folder, args.minutes, args.baseline) if args.minutes else {}
        print_tables(kills, cost, args)
    finally:
        if args.keep:
            out(f"work folder: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def print_tables(kills: list[dict[str, float]], cost: dict[str, dict[str, float]],
                 args: argparse.Namespace) -> None:
    if kills:
        lost = [k["lost_s"] for k in kills]
        rows = [(str(i + 1), f"{k['lost_s']:.2f}", f"{k['start_err_s']:+.3f}",
                 f"{k['end_err_s']:+.3f}") for i, k in enumerate(kills)]
        table(["kill", "seconds lost", "clip start error s", "clip end error s"], rows)
        p95 = percentile(lost, 95)
        out(f"lost per kill: max {max(lost):.2f} s, p95 {p95:.2f} s "
            f"(target <= 2 s: {'ok' if p95 is not None and p95 <= 2 else 'MISSED'}); clock "
            f"error max {max(abs(k['start_err_s']) for k in kills):.3f} s at the start, "
            f"{max(abs(k['end_err_s']) for k in kills):.3f} s at the end (target <= 0.1 s)")
        out()
    if cost:
        new, old = cost["progressive"], cost["baseline"]
        rows = [(name, f"{c['cores']:.3f}", f"{c['clips']:.0f}", f"{c['clip_bytes'] / 1e6:.2f}",
                 f"{c['bytes_per_s'] / 1e3:.0f}", f"{c['written'] / 1e6:.1f}",
                 f"{c['written_per_clip'] / 1e6:.2f}") for name, c in cost.items()]
        table(["camera", "CPU cores", "clips", "MB per clip", "kB per clip second",
               "MB written", "MB written per clip"], rows)
        cpu = new["cores"] / old["cores"] if old["cores"] else math.inf
        size = new["bytes_per_s"] / old["bytes_per_s"] - 1 if old["bytes_per_s"] else math.nan
        out(f"{args.minutes:g} min, 1080p25 4 Mbit/s, baseline {args.baseline}: CPU {cpu:.2f}x "
            f"(target <= 1.1x: {'ok' if cpu <= 1.1 else 'MISSED'}), clip bytes per second "
            f"{size:+.1%} (target within 5 %: {'ok' if abs(size) <= 0.05 else 'MISSED'})")


if __name__ == "__main__":
    raise SystemExit(main())
