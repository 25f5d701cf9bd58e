"""End-to-end benchmark: graffiti on screen -> clip committed in blob storage, on one machine.

The whole product runs as ``graffiti-edge demo`` runs it (:class:`local_run.pipeline.Pipeline`):
Azurite as the Blob Storage on IoT Edge stand-in, a simulated live RTSP camera playing the
demo video (1280x720, 25 fps, 75 s) in a loop on the wall clock, and the camera, detector and
uploader modules as real processes with their YAML twins. After a warm-up (``--start-delay``,
the camera shows the video's first frame frozen until the epoch) ``--passes`` passes of the
video are measured:

- Latency per sighting (ground truth from the video's JSON, merged into sightings with the
  camera twin's post-roll as in :mod:`local_run.sightings`): from the first frame on which
  the graffiti is visible to the uploader's ``clip.uploaded`` message (sent once the last
  part's blobs are committed). Most of it is by design: an event cannot end before the
  graffiti has gone plus the post-roll, ``(last - first) + post_roll``. The remainder is what
  the product adds: ``end lag`` (``event.ended`` sent, against ``last + post_roll``: stream
  latency, detection and the trigger; negative when the last confirming sample came before
  the last visible frame), ``write`` (``event.ended`` -> ``clip.written``) and ``upload``
  (``clip.written`` -> ``clip.uploaded``). ``confirm`` (first visible -> ``event.started``
  sent) is shown apart: it is when an operator hears of the event, not when the clip is in
  storage. Every stage is timed by when its message was sent (the wall clock, like the
  epoch), not by the frame times in the message bodies: those are the camera's stream
  clock, which runs a little ahead of the wall clock (printed as a diagnostic).
  p50/p95 interpolate linearly over all sightings of all passes (two per pass), as
  :func:`infra.stats.percentile` does for every percentile of the product.
- CPU and peak RSS per process (with its children, if any): the three modules, the RTSP
  camera server and Azurite (node). CPU is utime+stime from ``/proc/<pid>/stat`` over the
  measured window (epoch -> end of the last pass) as % of one core; peak RSS is VmHWM read
  just before each process is stopped. The whole machine's busy share (``/proc/stat``, every
  process, the benchmark and any neighbour included) is printed beside it because the
  machine is shared.
- Keeping up in real time, from the camera module's reported properties (written every 10 s
  or on a status change, so the window is the first report after the epoch -> the last
  report before the end, timed by the file's mtime): frames decoded against 25 fps, samples
  answered by the detector against ``detect_fps``, skipped samples, capture-to-decision
  p50/p95 (the module's window of the last 500 samples).

Every sighting must give exactly one event whose clip covers it and was uploaded, no false
alarms, every blob present in Azurite: the problems are printed and the exit status is 1 if
there are any, so the benchmark is also a sanity check of the whole pipeline.

    .venv/bin/python bench/e2e.py [--passes 1] [--start-delay 15] [--json e2e.json]

Target: the pipeline keeps up in real time on a 2-core machine for one 1280x720
25 fps camera.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import out, table  # noqa: E402
from config.camera import CameraSettings  # noqa: E402
from contracts.messages import (  # noqa: E402
    ClipUploaded,
    ClipWritten,
    EventEnded,
    EventStarted,
    Message,
)
from contracts.outputs import Output  # noqa: E402
from infra.stats import percentile  # noqa: E402
from local_run.demo_video import DEMO_VIDEO, ensure_demo_video, load_truth  # noqa: E402
from local_run.outputs import OutputLine, Sent, of_type, typed  # noqa: E402
from local_run.pipeline import Pipeline, PipelineSpec  # noqa: E402
from local_run.processes import free_port, port_is_free  # noqa: E402
from local_run.sightings import (  # noqa: E402
    Event,
    events_from_messages,
    score,
    seconds_since,
    sightings,
)

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
TOLERANCE_S = 1.0  # clip coverage and event matching, as the end-to-end test scores it
UPLOAD_WAIT_S = 90.0  # after the last pass, for the last clips to reach blob storage
REPORT_POLL_S = 0.2
# Keeping up: the rule printed with the verdict.
MIN_FRAMES_RATIO = 0.97
MIN_SAMPLES_RATIO = 0.95
MAX_P95_MS = 1000.0


# -- /proc ----------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (children of every thread)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime + reaped children's, of ``pid`` alone (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def peak_rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


@dataclass
class Measured:
    """One process (and its children) whose CPU and peak RSS are measured."""

    name: str
    pid: int
    module: bool
    cpu0: float = 0.0
    cpu1: float = 0.0
    peak_mb: float = 0.0
    members: int = 1

    def cpu_now(self) -> float:
        return sum(cpu_seconds(p) for p in descendants(self.pid))

    def read_peak(self) -> None:
        tree = descendants(self.pid)
        self.members = len(tree)
        self.peak_mb = max(self.peak_mb, sum(peak_rss_mb(p) for p in tree))


# -- the camera module's reported properties ------------------------------------------------


@dataclass
class ReportWatcher:
    """Keeps every version of a ``reported.json`` with the time it was written (its mtime)."""

    path: Path
    snapshots: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reported", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        seen = 0
        while not self._stop.wait(REPORT_POLL_S):
            try:
                mtime = self.path.stat().st_mtime_ns
            except OSError:
                continue
            if mtime == seen:
                continue
            # One report is one atomic write per section, a millisecond apart: let it finish.
            time.sleep(0.05)
            try:
                stat = self.path.stat()
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue
            seen = stat.st_mtime_ns
            self.snapshots.append((stat.st_mtime_ns / 1e9, doc))

    def window(self, start: float, end: float) -> tuple[tuple[float, dict[str, Any]],
                                                        tuple[float, dict[str, Any]]] | None:
        inside = [s for s in self.snapshots if start <= s[0] <= end]
        return (inside[0], inside[-1]) if len(inside) >= 2 else None


def wait_online(pipeline: Pipeline, epoch: float) -> float | None:
    """Until the camera module reports its stream online and the detector up; seconds before
    the epoch when it did, None if it had not by the epoch."""
    while time.time() < epoch:
        status = pipeline.reported("camera")
        if (status.get("stream", {}).get("camera", {}).get("status") == "online"
                and status.get("detector", {}).get("status") == "up"):
            return epoch - time.time()
        time.sleep(0.2)
    return None


def keeping_up(watcher: ReportWatcher, start: float, end: float, fps: float,
               detect_fps: float) -> dict[str, Any]:
    found = watcher.window(start, end)
    if found is None:
        return {"measured": False, "keepsUp": False,
                "why": "fewer than two camera reports inside the measured window"}
    (t0, a), (t1, b) = found
    seconds = t1 - t0

    def get(doc: dict[str, Any], *keys: str) -> float:
        value: Any = doc
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        return float(value) if isinstance(value, int | float) else 0.0

    def delta(*keys: str) -> float:
        return get(b, *keys) - get(a, *keys)

    frames, packets = delta("stream", "camera", "frames"), delta("stream", "camera", "packets")
    samples, skipped = delta("sampling", "samples"), delta("sampling", "skipped")
    failures = delta("detector", "failures")
    reconnects = delta("stream", "camera", "reconnects")
    stalls = delta("stream", "camera", "stalls")
    inside = [doc for t, doc in watcher.snapshots if t0 <= t <= t1]
    p95s = [get(doc, "sampling", "latencyP95Ms") for doc in inside]
    p50 = b.get("sampling", {}).get("latencyP50Ms")
    p95 = b.get("sampling", {}).get("latencyP95Ms")
    want_frames, want_samples = fps * seconds, detect_fps * seconds
    frames_ratio = frames / want_frames if want_frames else 0.0
    samples_ratio = samples / want_samples if want_samples else 0.0
    worst_p95 = max(p95s, default=0.0)
    keeps_up = (frames_ratio >= MIN_FRAMES_RATIO and samples_ratio >= MIN_SAMPLES_RATIO
                and p95 is not None and worst_p95 < MAX_P95_MS
                and failures == 0 and reconnects == 0)
    return {"measured": True, "windowS": round(seconds, 2), "reports": len(inside),
            "framesDecoded": int(frames), "framesExpected": round(want_frames),
            "framesRatio": round(frames_ratio, 4), "packets": int(packets),
            "samples": int(samples), "samplesExpected": round(want_samples),
            "samplesRatio": round(samples_ratio, 4), "skipped": int(skipped),
            "detectorFailures": int(failures), "reconnects": int(reconnects),
            "stalls": int(stalls), "latencyP50Ms": p50, "latencyP95Ms": p95,
            "worstReportedP95Ms": worst_p95, "keepsUp": keeps_up}


# -- latency --------------------------------------------------------------------------------


def pass_events(camera_events: Iterable[OutputLine], uploads: Iterable[OutputLine],
                epoch: float, duration_s: float) -> list[Event]:
    """The events confirmed during the pass that starts at ``epoch``, in its seconds."""
    return [e for e in events_from_messages(camera_events, uploads, epoch)
            if 0.0 <= e.confirmed_s < duration_s]


def latency_rows(pass_index: int, truth: list[Any], events: list[Event], matched: dict[int, str],
                 camera_events: list[Sent], epoch: float,
                 post_roll_s: float) -> list[dict[str, Any]]:
    """One row per sighting. The stages are timed by when each message was sent (``ts``, the
    wall clock), not by the frame times in the bodies: those are the camera's stream clock,
    which may run ahead of the wall clock (see :func:`frame_clock_ahead`)."""
    by_id = {e.event_id: e for e in events}
    sent: dict[tuple[type[Message], str], float] = {}
    for item in camera_events:
        if isinstance(item.message, EventStarted | EventEnded | ClipWritten):
            key = (type(item.message), item.message.event_id)
            sent[key] = max(sent.get(key, -math.inf), seconds_since(item.ts, epoch))
    rows = []
    for index, sighting in enumerate(truth):
        event = by_id.get(matched.get(index, ""))
        row: dict[str, Any] = {"pass": pass_index + 1, "firstS": sighting.first_s,
                               "lastS": sighting.last_s,
                               "eventId": event.event_id if event else None}
        if event is not None and event.uploaded_s is not None:
            design = (sighting.last_s - sighting.first_s) + post_roll_s
            latency = event.uploaded_s - sighting.first_s
            started = sent.get((EventStarted, event.event_id))
            end = sent.get((EventEnded, event.event_id))
            wrote = sent.get((ClipWritten, event.event_id))
            row.update({
                "confirmS": None if started is None else started - sighting.first_s,
                "latencyS": latency, "byDesignS": design, "remainderS": latency - design,
                "endLagS": None if end is None else end - (sighting.last_s + post_roll_s),
                "writeS": None if end is None or wrote is None else wrote - end,
                "uploadS": None if wrote is None else event.uploaded_s - wrote,
                "parts": len(event.clips)})
        rows.append(row)
    return rows


def frame_clock_ahead(camera_events: list[Sent]) -> float | None:
    """How far the camera's frame times run ahead of the wall clock, at least: an event's
    ``startUtc`` is the time of the frame that confirmed it, so it should come before the
    message announcing it (``ts``); the largest excess over all events."""
    excess = [item.message.start_utc.timestamp() - item.ts.timestamp()
              for item in camera_events if isinstance(item.message, EventStarted)]
    return max(excess, default=None)


def missing_blobs(pipeline: Pipeline, uploads: list[ClipUploaded]) -> list[str]:
    """Every blob the uploader said it committed must be in Azurite, with its size."""
    container = pipeline.container()
    problems = []
    for message in uploads:
        for blob in message.blobs:
            try:
                size = container.get_blob_client(blob.name).get_blob_properties().size
            except Exception as exc:  # any failure is the finding
                problems.append(f"blob {blob.name}: {type(exc).__name__}")
                continue
            if size != blob.bytes:
                problems.append(f"blob {blob.name}: {size} bytes, uploader said {blob.bytes}")
    return problems


# -- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    video = args.video.resolve()
    truth_doc = load_truth(video)
    fps = float(truth_doc["fps"])
    duration_s = int(truth_doc["frame_count"]) / fps
    spec = PipelineSpec(root=root, config_dir=ROOT / "config", video=video,
                        start_delay_s=args.start_delay, azurite_port=free_port(),
                        detector_port=free_port(), camera_port=free_port())
    pipeline = Pipeline(spec)
    settings = CameraSettings.model_validate(pipeline.docs["camera"])
    post_roll_s, pre_roll_s = settings.recording.post_roll_s, settings.recording.pre_roll_s
    detect_fps = settings.sampling.detect_fps
    truth = sightings(truth_doc, join_gap_s=post_roll_s)
    ports = {"azurite": pipeline.azurite.port, "detector": pipeline.detector_port,
             "camera": int(pipeline.camera_url.rsplit(":", 1)[1].split("/")[0])}
    notes: list[str] = []
    problems: list[str] = []
    watcher: ReportWatcher | None = None
    started = time.time()
    try:
        pipeline.start(on_step=lambda step: out(f"  starting {step}"))
        assert pipeline.epoch is not None and pipeline.camera is not None
        epoch = pipeline.epoch
        end = epoch + args.passes * duration_s
        ready_s = time.time() - started
        if time.time() > epoch:
            notes.append(f"modules ready {time.time() - epoch:.1f} s after the epoch "
                         "(raise --start-delay)")
        watcher = ReportWatcher(pipeline.module("camera").data_dir / "reported.json")
        watcher.start()
        early_s = wait_online(pipeline, epoch)
        measured = [Measured(f"{m} module", pipeline.module(m).process.pid, True)
                    for m in ("camera", "detector", "uploader")]
        assert pipeline.camera.process is not None and pipeline.azurite.process is not None
        camera_server = Measured("RTSP camera (simulated)", pipeline.camera.process.pid, False)
        azurite = Measured("Azurite (node)", pipeline.azurite.process.pid, False)
        measured += [camera_server, azurite]
        out(f"  modules ready after {ready_s:.1f} s; measuring {args.passes} pass(es) of "
            f"{duration_s:g} s from the epoch")
        time.sleep(max(0.0, epoch - time.time()))
        busy0, total0 = machine_busy()
        for m in measured:
            m.cpu0 = m.cpu_now()
        t0 = time.monotonic()
        time.sleep(max(0.0, end - time.time()))
        for m in measured:
            m.cpu1 = m.cpu_now()
        window_s = time.monotonic() - t0
        busy1, total1 = machine_busy()
        # The camera server stops now, so the next loop starts no new event.
        camera_server.read_peak()
        pipeline.camera.stop()
        deadline = time.monotonic() + UPLOAD_WAIT_S
        while time.monotonic() < deadline:
            if pipeline.settled():
                break
            time.sleep(0.5)
        else:
            notes.append(f"clips still not all uploaded {UPLOAD_WAIT_S:g} s after the last pass")
        camera_lines = pipeline.messages("camera", Output.EVENTS)
        upload_lines = pipeline.messages("uploader", Output.CLIPS)
        camera_events = typed(camera_lines)
        uploads = of_type(typed(upload_lines), ClipUploaded)
        problems += missing_blobs(pipeline, uploads)
        for m in measured:
            if m is not camera_server:
                m.read_peak()
        watcher.stop()
        keep_up = keeping_up(watcher, epoch, end, fps, detect_fps)
        if early_s is None:
            online = [t for t, doc in watcher.snapshots
                      if doc.get("stream", {}).get("camera", {}).get("status") == "online"]
            notes.append("the camera module was not receiving the stream (with the detector "
                         "up) at the epoch: online " + (f"{online[0] - epoch:.1f} s after it"
                                                        if online else "never") +
                         "; sightings at the start of pass 1 lose pre-roll")
    finally:
        if watcher is not None:
            watcher.stop()
        codes = pipeline.stop()
    listening = [f"{name} port {port}" for name, port in ports.items() if not port_is_free(port)]
    if listening:
        problems.append("still listening after stop: " + ", ".join(listening))
    if any(code != 0 for code in codes.values()):
        notes.append(f"module exit codes: {codes}")

    rows: list[dict[str, Any]] = []
    for index in range(args.passes):
        start = epoch + index * duration_s
        events = pass_events(camera_lines, upload_lines, start, duration_s)
        result = score(truth, events, pre_roll_s=pre_roll_s, post_roll_s=post_roll_s,
                       tolerance_s=TOLERANCE_S)
        problems += [f"pass {index + 1}: {p}" for p in result.problems]
        problems += [f"pass {index + 1}: event {e.event_id} never reached blob storage"
                     for e in events if e.uploaded_s is None]
        rows += latency_rows(index, truth, events, result.matched, camera_events, start,
                             post_roll_s)
    before = [e for e in events_from_messages(camera_lines, upload_lines, epoch)
              if e.confirmed_s < 0]
    problems += [f"event {e.event_id} {-e.confirmed_s:.1f} s before the epoch (warm-up)"
                 for e in before]

    def stats(key: str) -> dict[str, float | None]:
        values = [r[key] for r in rows if r.get(key) is not None]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95)}

    processes = {m.name: {"cpuPctOfCore": 100 * (m.cpu1 - m.cpu0) / window_s,
                          "peakRssMb": m.peak_mb, "processes": m.members, "module": m.module}
                 for m in measured}
    modules_cpu = sum(p["cpuPctOfCore"] for p in processes.values() if p["module"])
    all_cpu = sum(p["cpuPctOfCore"] for p in processes.values())
    return {
        "video": str(video), "passes": args.passes, "passS": duration_s,
        "startDelayS": args.start_delay, "windowS": window_s, "cores": CORES,
        "postRollS": post_roll_s, "preRollS": pre_roll_s, "detectFps": detect_fps,
        "toleranceS": TOLERANCE_S, "sightings": rows,
        "latency": {k: stats(k) for k in ("latencyS", "byDesignS", "remainderS", "confirmS",
                                          "endLagS", "writeS", "uploadS")},
        "processes": processes,
        "modulesCpuPctOfCore": modules_cpu, "allCpuPctOfCore": all_cpu,
        "modulesMachineSharePct": modules_cpu / CORES,
        "allMachineSharePct": all_cpu / CORES,
        "machineBusyPct": 100 * (busy1 - busy0) / max(1, total1 - total0),
        "modulesPeakRssMb": sum(p["peakRssMb"] for p in processes.values() if p["module"]),
        "keepingUp": keep_up, "problems": problems, "notes": notes,
        "events": len(events_from_messages(camera_lines, upload_lines, epoch)),
        "clipsUploaded": len(uploads),
        "frameClockAheadS": frame_clock_ahead(camera_events),
        "onlineBeforeEpochS": early_s,
    }


def s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(r: dict[str, Any], wall_s: float) -> None:
    out()
    out(f"{r['passes']} pass(es) of {r['video']} ({r['passS']:g} s, measured window "
        f"{r['windowS']:.1f} s) after {r['startDelayS']:g} s warm-up; {r['cores']} cores; "
        f"detect_fps {r['detectFps']:g}, pre/post-roll {r['preRollS']:g}/{r['postRollS']:g} s; "
        f"run wall time {wall_s:.0f} s")
    out()
    out("Graffiti first visible -> clip committed in blob storage (seconds; remainder = "
        "end lag + write + upload)")
    table(["pass", "sighting", "latency", "by design", "remainder", "end lag", "write",
           "upload", "confirm", "event"],
          [[str(row["pass"]), f"{row['firstS']:.1f}-{row['lastS']:.1f}", s(row.get("latencyS")),
            s(row.get("byDesignS")), s(row.get("remainderS"), 2), s(row.get("endLagS"), 2),
            s(row.get("writeS"), 2), s(row.get("uploadS"), 2), s(row.get("confirmS"), 2),
            row["eventId"] or "NONE"] for row in r["sightings"]])
    out()
    lat = r["latency"]
    table(["over all sightings", "p50", "p95"],
          [[name, s(lat[key]["p50"], 2), s(lat[key]["p95"], 2)] for name, key in (
              ("latency", "latencyS"), ("by design ((last-first)+post-roll)", "byDesignS"),
              ("remainder", "remainderS"), ("  end lag", "endLagS"),
              ("  clip write", "writeS"), ("  upload", "uploadS"),
              ("confirm (first visible -> confirmed)", "confirmS"))])
    design_share = [row["byDesignS"] / row["latencyS"] for row in r["sightings"]
                    if row.get("latencyS")]
    if design_share:
        out(f"by design: {100 * min(design_share):.0f}-{100 * max(design_share):.0f} % "
            "of each sighting's latency")
    out()
    out("CPU over the measured window (% of one core) and peak RSS (VmHWM)")
    procs = r["processes"]
    table(["process", "CPU %", "peak RSS MB", "procs"],
          [[name, s(p["cpuPctOfCore"]), s(p["peakRssMb"], 0), str(p["processes"])]
           for name, p in procs.items()]
          + [["modules total", s(r["modulesCpuPctOfCore"]), s(r["modulesPeakRssMb"], 0), ""],
             ["everything above", s(r["allCpuPctOfCore"]), "", ""]])
    out(f"machine share ({r['cores']} cores): modules {r['modulesMachineSharePct']:.1f} %, "
        f"everything above {r['allMachineSharePct']:.1f} %; whole machine busy "
        f"{r['machineBusyPct']:.1f} % (every process, neighbours included)")
    out()
    k = r["keepingUp"]
    if k["measured"]:
        out(f"Keeping up (camera reports {k['reports']}, window {k['windowS']:.1f} s between the "
            "first report after the epoch and the last before the end)")
        table(["measure", "value", "expected", "ratio"], [
            ["frames decoded", str(k["framesDecoded"]), str(k["framesExpected"]),
             f"{100 * k['framesRatio']:.1f} %"],
            ["samples answered by the detector", str(k["samples"]), str(k["samplesExpected"]),
             f"{100 * k['samplesRatio']:.1f} %"],
            ["skipped samples (detector slower)", str(k["skipped"]), "0", ""],
            ["detector failures / reconnects / stalls",
             f"{k['detectorFailures']} / {k['reconnects']} / {k['stalls']}", "0 / 0 / -", ""],
            ["capture-to-decision p50 / p95 (ms)",
             f"{k['latencyP50Ms']} / {k['latencyP95Ms']}", "", ""],
            ["worst reported p95 in the window (ms)", s(k["worstReportedP95Ms"]), "", ""],
        ])
    else:
        out(f"Keeping up: not measured ({k['why']})")
    out(f"keeps up: {'yes' if k['keepsUp'] else 'NO'} (rule: frames decoded >= "
        f"{100 * MIN_FRAMES_RATIO:.0f} % of 25 fps, detector answers >= "
        f"{100 * MIN_SAMPLES_RATIO:.0f} % of detect_fps, reported p95 < {MAX_P95_MS:.0f} ms, "
        "no detector failures, no reconnects)")
    out()
    out(f"events {r['events']}, clips uploaded {r['clipsUploaded']}; camera stream online "
        + ("-" if r["onlineBeforeEpochS"] is None else f"{r['onlineBeforeEpochS']:.1f} s")
        + " before the epoch; camera frame clock ahead of the wall clock by >= "
        f"{s(r['frameClockAheadS'], 2)} s (event.started's startUtc - its ts)")
    for note in r["notes"]:
        out(f"note: {note}")
    out("problems: " + ("none" if not r["problems"] else ""))
    for problem in r["problems"]:
        out(f"  {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=1, help="passes of the video (75 s each)")
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one, "
                        "removed unless there are problems or --keep)")
    parser.add_argument("--video", type=Path, help="video with ground truth beside it "
                        f"(default: {DEMO_VIDEO}, rendered if missing)")
    parser.add_argument("--start-delay", type=float, default=15.0,
                        help="warm-up before the first pass, seconds")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args()
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    json_path = args.json.resolve() if args.json else None
    root = args.root.resolve() if args.root else Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.chdir(ROOT)  # the modules' relative defaults are the repository's, as in the demo
    args.video = (args.video.resolve() if args.video else
                  ensure_demo_video(ROOT / DEMO_VIDEO).resolve())
    started = time.monotonic()
    out(f"work folder: {root}")
    result = run(args, root)
    wall_s = time.monotonic() - started
    result["wallS"] = wall_s
    report(result, wall_s)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        out(f"figures written to {json_path}")
    if args.root is None and not args.keep and not result["problems"]:
        shutil.rmtree(root, ignore_errors=True)
    else:
        out(f"work folder kept: {root}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
