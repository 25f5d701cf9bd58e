"""Where the detector's CPU per answer goes: one run, one table.

    .venv/bin/python -m bench.detector_cpu [--seconds 15] [--rates 2,10,40]

The frame is what a camera sends: a sample-world 1280x720 frame scaled by the camera's own
``scaled_size`` and ``encode_jpeg`` to cover the model's input. First each stage of an answer
is timed back to back in this process, in process CPU (ONNX Runtime's threads included): the
header check, JPEG decode and resize, the tensor, inference, box decoding with NMS, and the
JSON answer. Then, at each ``--rates`` (requests per second, paced like cameras, not back to
back):

- ``detector-module`` in its own process with the shipped sample model, posted to over one
  keep-alive connection and, at the first rate, also with a new connection per request (as
  the camera's urllib client does); its CPU (user + system, from /proc) per answer;
- the same answer's stages in this process, paced the same way;
- a control that does not involve the product: filling and reading 600 kB (about one
  decoded frame) in one thread, paced the same way, against the same back to back.

Module minus in-process, at one rate, is what HTTP, the event loop and the hop to the worker
thread cost. The control shows how much slower this machine runs any work that comes after
an idle gap; that slowdown is the machine's, and it inflates every per-answer figure at low
rates.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort

from bench.camera import cpu_seconds
from bench.detector import Server
from bench.report import table
from camera_module.detector import encode_jpeg, scaled_size
from detector_module.backends import InferenceOptions
from detector_module.detection import PostProcess, postprocess
from detector_module.engine import LoadedModel, load_model
from detector_module.imaging import decode, inspect, prepare
from detector_module.package import bundled_sample, load_package
from samples.world.video import generate


def camera_frame(model: LoadedModel) -> bytes:
    """A sample-world frame as the camera module would post it."""
    frames, _ = generate("clean", 7, 1280, 720, 25, seconds=1.0)
    image = next(iter(frames))
    spec = model.adapter.spec
    size = scaled_size(1280, 720, spec.width, spec.height)
    return encode_jpeg(av.VideoFrame.from_ndarray(image, format="rgb24"), size, 85)


def stages(model: LoadedModel, data: bytes, repeat: int) -> dict[str, float]:
    """Median process CPU per stage, in milliseconds."""
    spec = model.adapter.spec
    params = PostProcess()
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], object]) -> object:
        start = time.process_time()
        out = fn()
        times.setdefault(name, []).append((time.process_time() - start) * 1000)
        return out

    for _ in range(repeat):
        header = timed("header check", lambda: inspect(data, 40_000_000))
        image = timed("JPEG decode + resize",
                      lambda h=header: decode(data, h, (spec.width, spec.height)))
        tensor, geometry = timed("tensor (letterbox, scale)", lambda i=image: prepare(i, spec))
        feeds = model.adapter.feeds(tensor, geometry)
        outputs = timed("inference (OpenVINO)", lambda f=feeds: model.backend.run(f))
        detections = timed("boxes + NMS", lambda o=outputs, g=geometry: postprocess(
            model.adapter.decode(o, g, params.floor), model.adapter.labels, params))
        timed("JSON answer", lambda d=detections: json.dumps(
            {"detections": [x.to_dict() for x in d], "model": {"name": "x"}}).encode())
    return {name: statistics.median(values) for name, values in times.items()}


def paced(fn: Callable[[], object], requests: int, rate: float,
          cpu: Callable[[], float] = time.process_time, tail_s: float = 0.0) -> float:
    """Milliseconds of CPU (``cpu()``, in seconds) per call of ``fn`` called ``rate`` times a
    second; ``tail_s`` after the last call still counts (work it left behind)."""
    before = cpu()
    start = time.monotonic()
    for i in range(requests):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fn()
    time.sleep(tail_s)
    return (cpu() - before) * 1000 / requests


def control() -> None:
    """Fill and read 600 kB, about one decoded frame, in one thread: no product code, no
    thread pool that could spin."""
    np.ones(600_000, np.uint8).sum()


def served(server: Server, data: bytes, requests: int, rate: float, keep_alive: bool) -> float:
    """The module's CPU milliseconds per answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    def post() -> None:
        status, _ = server.request("POST", "/score?camera_id=bench", data,
                                   conn if keep_alive else None)
        assert status == 200, status

    try:
        # The last answer's tail (logging, the event check) is counted too.
        return paced(post, requests, rate, lambda: cpu_seconds(server.proc.pid), 1 / rate)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="time per figure")
    parser.add_argument("--rates", default="2,10,40", help="requests per second, comma-separated")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    ort.set_default_logger_severity(3)
    source = bundled_sample()
    assert source is not None, "no sample model in samples/models"
    model = load_model(load_package(source), InferenceOptions(cache_dir=None))
    data = camera_frame(model)
    parts = stages(model, data, 100)
    spec = model.adapter.spec
    params = PostProcess()

    def answer() -> None:
        model.detect(decode(data, inspect(data, 40_000_000), (spec.width, spec.height)), params)


    def count(rate: float) -> int:
        return max(20, round(rate * args.seconds))

    hot_control = paced(control, 200, 1e9)
    local = {rate: paced(answer, count(rate), rate) for rate in rates}
    cold_control = {rate: paced(control, count(rate), rate) for rate in rates}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(source, Path(tmp))
        try:
            server.request("POST", "/score", data)  # warm
            per_conn = served(server, data, count(rates[0]), rates[0], keep_alive=False)
            remote = {rate: served(server, data, count(rate), rate, keep_alive=True)
                      for rate in rates}
        finally:
            server.stop()
    explained = sum(parts.values())
    rows = [("model", f"{model.package.name} {model.package.version} "
             f"({spec.width}x{spec.height}), frame {len(data)} B JPEG", "")]
    rows += [(f"  {name}", f"{ms:.2f} ms", f"{ms / explained:.0%}") for name, ms in parts.items()]
    rows.append(("stages back to back, in this process", f"{explained:.2f} ms", "100%"))
    for rate in rates:
        rows += [
            (f"at {rate:g}/s: detector-module", f"{remote[rate]:.2f} ms",
             f"{remote[rate] / explained:.1f}x the stages back to back"),
            (f"at {rate:g}/s: the same stages in this process", f"{local[rate]:.2f} ms",
             f"module - in-process = {remote[rate] - local[rate]:.2f} ms"),
            (f"at {rate:g}/s: control (600 kB touched, not the product)",
             f"{cold_control[rate]:.2f} ms",
             f"{cold_control[rate] / hot_control:.1f}x the same back to back"),
        ]
    rows.append((f"at {rates[0]:g}/s: detector-module, new connection per request",
                 f"{per_conn:.2f} ms", f"{per_conn / remote[rates[0]]:.2f}x keep-alive"))
    table(["CPU per answer", "value", "ratio"], rows)


if __name__ == "__main__":
    main()
