"""A stand-in for the detector's Web API that "detects" the marker colour of the test videos.

It speaks the same routes and JSON as detector_module (GET /model, POST /score), so the camera's
real HTTP client is exercised; it finds the red square of the tests' marker videos
(``tests/support/rtsp.py``) and reports its box, which lets the RTSP tests check timing to the
frame without a trained model. It can be stopped and started on the same port, and records the
size of every image it was sent. ``mangle`` (if set) rewrites each ``/score`` answer before it
goes out, for tests of a detector that answers nonsense.

``python -m local_run.fake_detector --port N --on 10 --off 20`` runs it as its own process (for
the benchmark, so its CPU is not the camera's) and, with ``--on/--off``, also reports a box
during ``on`` seconds out of every ``on + off`` by its own clock, whatever the image shows.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from local_run.processes import free_port

MODEL = {"name": "marker-finder", "version": "1.0.0", "format": "fake",
         "input": {"width": 320, "height": 320}, "labels": ["graffiti"]}


def red_mask(image: np.ndarray) -> np.ndarray:
    """Pixels of the test videos' marker: strongly red (RGB)."""
    r, g, b = (image[..., i].astype(np.int16) for i in range(3))
    return (r > 170) & (g < 90) & (b < 90)


class FakeDetector:
    def __init__(self, score: float = 0.9, port: int | None = None,
                 schedule: tuple[float, float] | None = None) -> None:
        self.port = port or free_port()
        self.score = score
        self.schedule = schedule
        self._started = time.monotonic()
        self.sizes: list[tuple[int, int]] = []
        self.requests = 0
        self.mangle: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeDetector:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._json(MODEL)

            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                fake.requests += 1
                fake.sizes.append((image.shape[1], image.shape[0]))
                answer = {"model": {"name": MODEL["name"], "version": MODEL["version"]},
                          "image": {"width": image.shape[1], "height": image.shape[0]},
                          "inference_ms": 1.0, "detections": fake.detect(image)}
                self._json(fake.mangle(answer) if fake.mangle else answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def detect(self, bgr: np.ndarray) -> list[dict[str, Any]]:
        if self.schedule is None:
            return find_marker(bgr, self.score)
        on, off = self.schedule
        if (time.monotonic() - self._started) % (on + off) >= on:
            return []
        return [{"label": "graffiti", "class_id": 0, "score": self.score,
                 "box": [0.4, 0.4, 0.6, 0.6]}]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def find_marker(bgr: np.ndarray, score: float) -> list[dict[str, Any]]:
    mask = red_mask(bgr[..., ::-1])
    if np.count_nonzero(mask) < 20:
        return []
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    box = [round(float(xs.min()) / width, 4), round(float(ys.min()) / height, 4),
           round(float(xs.max() + 1) / width, 4), round(float(ys.max() + 1) / height, 4)]
    return [{"label": "graffiti", "class_id": 0, "score": score, "box": box}]


def main() -> None:
    parser = argparse.ArgumentParser(description="fake detector Web API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--on", type=float, help="seconds with a detection ...")
    parser.add_argument("--off", type=float, help="... then seconds without, repeating")
    args = parser.parse_args()
    schedule = (args.on, args.off) if args.on and args.off else None
    FakeDetector(port=args.port, schedule=schedule).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
