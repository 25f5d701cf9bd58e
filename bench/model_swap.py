"""Model update benchmark: patch-to-active time over a throttled link, /score p99 in a swap.

Starts the detector in-process on graffiti-sample-1.0.0, serves graffiti-sample-1.1.0 from a
local HTTP server, and sets the twin's `model` to 1.1.0 with the download capped at
``--kbps`` kB/s. A client sends ``--rate`` /score requests per second (640x360 JPEG) from
before the patch until after the swap. Prints one table: patch-to-active time and its
phases, and /score latency p50/p99 in steady state, during the download and in the swap
window (loading the new session beside the old, warm-up, sanity image, swap, +1 s).

    .venv/bin/python bench/model_swap.py [--kbps 256] [--rate 25] [--steady-s 5]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import logging
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.registry import DETECTOR  # noqa: E402
from detector_module.service import DetectorService  # noqa: E402
from edge_link.runtime import ModuleRuntime, RuntimeOptions  # noqa: E402
from infra.stats import percentile  # noqa: E402
from infra.throttle import KB  # noqa: E402

SAMPLES = ROOT / "samples" / "models"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def pct_ms(values: list[float], q: float) -> float:
    """The ``q``-th percentile in milliseconds; NaN (printed as nan) for no samples."""
    value = percentile(values, q)
    return float("nan") if value is None else value * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kbps", type=float, default=256.0,
                        help="download cap, kB/s (1 kB = 1000 bytes)")
    parser.add_argument("--rate", type=float, default=25.0, help="/score requests per second")
    parser.add_argument("--steady-s", type=float, default=5.0, help="steady-state window, s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    new = SAMPLES / "graffiti-sample-1.1.0.zip"
    md5 = base64.b64encode(hashlib.md5(new.read_bytes()).digest()).decode()  # noqa: S324
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                partial(Quiet, directory=str(SAMPLES)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{new.name}?sv=x&sig=bench"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        twin = {"inference": {"cache_dir": str(root / "ov_cache")},
                "model_repository": {"dir": str(root / "repo"), "bandwidth_kbps": args.kbps}}
        twin_file = root / "detector.yaml"
        twin_file.write_text(json.dumps(twin))
        runtime = ModuleRuntime(DETECTOR, RuntimeOptions(twin_file, root / "data", 2),
                                environ={})
        runtime.start()
        service = DetectorService(runtime, model_path=SAMPLES / "graffiti-sample-1.0.0.zip",
                                  port=0)
        runtime.attach(service)
        service.start()
        runtime.reporter.start()
        try:
            assert service.wait_ready(60), "the detector did not load 1.0.0"
            ok, enc = cv2.imencode(".jpg", np.full((360, 640, 3), 90, np.uint8))
            image = enc.tobytes()
            samples: list[tuple[float, float, int, str]] = []  # (t, latency, status, version)
            stop = threading.Event()

            def client() -> None:
                next_at = time.monotonic()
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
                        conn.request("POST", "/score", image, {"Content-Type": "image/jpeg"})
                        resp = conn.getresponse()
                        body = resp.read()
                        conn.close()
                        version = json.loads(body)["model"]["version"] if resp.status == 200 \
                            else "-"
                        samples.append((t0, time.monotonic() - t0, resp.status, version))
                    except Exception:  # noqa: BLE001
                        samples.append((t0, time.monotonic() - t0, -1, "-"))
                    next_at += 1 / args.rate
                    time.sleep(max(0.0, next_at - time.monotonic()))

            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            time.sleep(args.steady_s)
            marks: dict[str, float] = {}
            t_patch = time.monotonic()
            twin["model"] = {"version": "1.1.0", "url": url, "content_md5": md5}
            twin_file.write_text(json.dumps(twin))
            while time.monotonic() - t_patch < 600:
                status = service.updates.state.get("status")
                if status and status not in marks:
                    marks[status] = time.monotonic()
                if status in ("active", "failed") and \
                        service.updates.state.get("version") in ("1.1.0", None):
                    break
                time.sleep(0.005)
            t_active = time.monotonic()
            time.sleep(1.0)
            stop.set()
            thread.join(15)
        finally:
            service.stop()
            runtime.stop()
            httpd.shutdown()
            httpd.server_close()

    status = service.updates.state.get("status")
    t_load = marks.get("loading", t_active)
    t_dl = marks.get("downloading", t_patch)
    steady = [lat for t, lat, _, _ in samples if t < t_patch]
    during_dl = [lat for t, lat, _, _ in samples if t_dl <= t < t_load]
    swap = [lat for t, lat, _, _ in samples if t_load <= t <= t_active + 1.0]
    errors = sum(1 for s in samples if s[2] != 200)
    versions = [v for *_, v in samples if v != "-"]
    changes = sum(1 for a, b in zip(versions, versions[1:], strict=False) if a != b)
    size_kb = new.stat().st_size / KB
    rows = [
        ("result", status),
        ("package", f"{new.name} ({size_kb:.0f} kB), cap {args.kbps:.0f} kB/s"),
        ("patch -> active", f"{t_active - t_patch:.2f} s"),
        ("  patch -> downloading (twin file watch)", f"{t_dl - t_patch:.2f} s"),
        ("  downloading + verifying + unpack", f"{t_load - t_dl:.2f} s"),
        ("  loading (new session, warm-up, sanity, swap)", f"{t_active - t_load:.2f} s"),
        ("requests / errors / version changes", f"{len(samples)} / {errors} / {changes}"),
        ("/score p50 / p99 steady", f"{pct_ms(steady, 50):.1f} / "
                                    f"{pct_ms(steady, 99):.1f} ms (n={len(steady)})"),
        ("/score p50 / p99 during download", f"{pct_ms(during_dl, 50):.1f} / "
         f"{pct_ms(during_dl, 99):.1f} ms (n={len(during_dl)})"),
        ("/score p50 / p99 swap window", f"{pct_ms(swap, 50):.1f} / "
                                         f"{pct_ms(swap, 99):.1f} ms (n={len(swap)})"),
        ("/score max swap window / slow (> 3x steady p99)",
         f"{max(swap, default=float('nan')) * 1e3:.1f} ms / "
         f"{sum(1 for v in swap if v * 1e3 > 3 * pct_ms(steady, 99))}"),
        ("p99 swap / steady (target <= 3x)",
         f"{pct_ms(swap, 99) / pct_ms(steady, 99):.2f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if status == "active" and errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
