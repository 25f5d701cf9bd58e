"""Detector benchmark: one run, one table.

    .venv/bin/python bench/detector.py [--model PACKAGE] [--seconds S]

Measures, on the shipped sample model (or a representative YOLOv8-style model built here
when samples/models has none yet):

* in-process latency p50/p95 of one frame (JPEG decode, preprocess, inference, NMS) on the
  OpenVINO provider and on the plain CPU provider;
* HTTP ``POST /score`` throughput at concurrency 1 and 4 against in-process calls at the same
  concurrency (the server runs as ``detector-module`` in its own process);
* the seed's approach, a new inference session per request, against one warmed session.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import table  # noqa: E402
from detector_module.backends import OPENVINO, InferenceOptions, openvino_provider_options  # noqa: E402
from detector_module.detection import PostProcess  # noqa: E402
from detector_module.engine import LoadedModel, load_model  # noqa: E402
from detector_module.imaging import decode, inspect  # noqa: E402
from detector_module.package import ModelPackage, bundled_sample, load_package  # noqa: E402
from infra.stats import percentile  # noqa: E402

FRAME_W, FRAME_H = 1280, 720


def representative_model(width: int = 512, height: int = 288, classes: int = 1) -> bytes:
    """A YOLOv8-layout detector of the sample's size class: a strided conv backbone to a
    stride-8 head, output [1, 4 + C, N]. Random weights: only the cost matters here."""
    rng = np.random.default_rng(0)
    nodes, inits, prev, channels = [], [], "images", 3
    for i, (out, stride) in enumerate([(16, 2), (32, 2), (64, 2), (64, 1), (96, 1),
                                       (64, 1)]):
        w = numpy_helper.from_array(
            (rng.standard_normal((out, channels, 3, 3)) * 0.1).astype(np.float32), f"w{i}")
        b = numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}")
        inits += [w, b]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"],
                                   strides=[stride, stride], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, channels = f"r{i}", out
    head = numpy_helper.from_array(
        (rng.standard_normal((4 + classes, channels, 1, 1)) * 0.1).astype(np.float32), "wh")
    # Class logits biased to about -6: like a trained model on an empty scene, few rows pass
    # the threshold, so the figures measure inference rather than NMS over noise.
    bias = numpy_helper.from_array(np.array([0.0] * 4 + [-6.0] * classes, np.float32), "bh")
    shape = numpy_helper.from_array(np.array([1, 4 + classes, -1], np.int64), "shape")
    inits += [head, bias, shape]
    nodes += [helper.make_node("Conv", [prev, "wh", "bh"], ["head"]),
              helper.make_node("Reshape", ["head", "shape"], ["flat"]),
              helper.make_node("Sigmoid", ["flat"], ["output0"])]
    n = (width // 8) * (height // 8)
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                       [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, n])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def build_package(folder: Path) -> Path:
    pkg = folder / "bench-yolov8-1.0.0"
    pkg.mkdir()
    (pkg / "model.onnx").write_bytes(representative_model())
    (pkg / "labels.txt").write_text("graffiti\n")
    (pkg / "manifest.json").write_text(json.dumps({
        "name": "bench-yolov8", "version": "1.0.0", "format": "yolov8",
        "input": {"width": 512, "height": 288, "resize": "letterbox"}}))
    return pkg


def frame_jpeg() -> bytes:
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 255, (FRAME_H, FRAME_W, 3), np.uint8), (9, 9), 3)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def in_process_call(model: LoadedModel, data: bytes) -> Callable[[], None]:
    """What /score does for one request, minus HTTP: inspect, decode, detect."""
    params = PostProcess()
    spec = model.adapter.spec

    def call() -> None:
        image = decode(data, inspect(data, 40_000_000), (spec.width, spec.height))
        model.detect(image, params)
    return call


def latencies(fn: Callable[[], None], seconds: float, minimum: int = 20) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(out) < minimum:
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def throughput(fn: Callable[[], None], concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` threads calling ``fn`` back to back."""
    done = [0] * concurrency
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            fn()
            done[i] += 1
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return sum(done) / (time.perf_counter() - start)


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile of latencies in seconds, in milliseconds."""
    value = percentile(values, q)
    assert value is not None, "latencies() always measures at least one call"
    return value * 1000


class Server:
    """``detector-module`` in its own process, on a free port, with a scratch twin file."""

    def __init__(self, package: Path, work: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        twin = work / "detector.yaml"
        twin.write_text(json.dumps({"inference": {"cache_dir": str(work / "ov_cache")},
                                    "events": {"enabled": False},
                                    "logging": {"level": "WARNING"}}))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IOTEDGE_", "GRAFFITI_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector_module", "--config", str(twin), "--port",
             str(self.port), "--model", str(package), "--data-dir", str(work / "data")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", None)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("detector-module did not become ready")

    def request(self, method: str, path: str, body: bytes | None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body,
                     headers={"Content-Type": "image/jpeg"} if body else {})
        response = conn.getresponse()
        result = response.status, response.read()
        if own:
            conn.close()
        return result

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def http_throughput(server: Server, data: bytes, concurrency: int,
                    seconds: float) -> tuple[float, int]:
    """Requests per second over keep-alive connections (as a camera client keeps one)."""
    local = threading.local()
    failures = [0]

    def call() -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        status, _ = server.request("POST", "/score", data, local.conn)
        if status != 200:
            failures[0] += 1
    return throughput(call, concurrency, seconds), failures[0]


def session_per_request(model_bytes: bytes, name: str, tensor: np.ndarray,
                        runs: int) -> list[float]:
    """The seed's way: a new InferenceSession for every request (same provider as ours)."""
    options = openvino_provider_options(InferenceOptions(cache_dir=None))
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        session = ort.InferenceSession(model_bytes, providers=[OPENVINO],
                                       provider_options=[options])
        session.run(None, {name: tensor})
        out.append(time.perf_counter() - start)
    return out


def compare_providers(package: ModelPackage, data: bytes,
                      seconds: float) -> dict[str, list[float]]:
    """Latencies of the same frames on the OpenVINO and the CPU provider, alternating in
    short rounds so background load hits both alike; the CPU session is freed on return."""
    ov = load_model(package, InferenceOptions(cache_dir=None))
    cpu = load_model(package, InferenceOptions(cache_dir=None, use_openvino=False))
    spec = ov.adapter.spec
    feeds = {ov.backend.inputs[0].name: np.zeros((1, 3, spec.height, spec.width), np.float32)}
    calls = {"ov": in_process_call(ov, data), "cpu": in_process_call(cpu, data),
             "ov_run": lambda: ov.backend.run(feeds), "cpu_run": lambda: cpu.backend.run(feeds)}
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(20):
        for name, call in calls.items():
            out[name] += latencies(call, seconds / 40, 3)
    return out


def compare_http(source: Path, work: Path, call: Callable[[], None], data: bytes,
                 seconds: float) -> dict[int, tuple[float, float, int]]:
    """(in-process req/s, HTTP req/s, non-200 answers) at concurrency 1 and 4.

    Concurrency 1 alternates call by call, concurrency 4 runs in short alternating rounds,
    so background load hits both sides alike."""
    server = Server(source, work)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        local: list[float] = []
        remote: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            local += latencies(call, 0, 1)
            remote += latencies(lambda: server.request("POST", "/score", data, conn), 0, 1)
        conn.close()
        result = {1: (1 / statistics.mean(local), 1 / statistics.mean(remote), 0)}
        rounds = [(throughput(call, 4, seconds / 8), *http_throughput(server, data, 4,
                                                                       seconds / 8))
                  for _ in range(8)]
        result[4] = (statistics.mean(r[0] for r in rounds),
                     statistics.mean(r[1] for r in rounds), sum(r[2] for r in rounds))
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model package (default: the bundled "
                        "sample, else a representative model built here)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="measuring time per figure (default 4)")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = args.model or bundled_sample() or build_package(work)
        package = load_package(source)
        data = frame_jpeg()
        lat = compare_providers(package, data, args.seconds)
        gc.collect()
        model = load_model(package, InferenceOptions(cache_dir=None))
        spec = model.adapter.spec
        http_figures = compare_http(source, work, in_process_call(model, data), data,
                                    args.seconds)
        tensor = np.zeros((1, 3, spec.height, spec.width), np.float32)
        per_request = session_per_request(package.model, model.backend.inputs[0].name,
                                          tensor, 8)

    def ms(name: str, q: float = 50) -> float:
        return pct(lat[name], q)

    rows = [
        ("model", f"{package.name} {package.version} ({model.adapter.format}, "
                  f"{spec.width}x{spec.height}), frame {FRAME_W}x{FRAME_H} JPEG", ""),
        ("default provider", f"{model.backend.providers[0]} "
         f"({model.backend.provider_options.get('load_config', 'no load_config')})", ""),
        ("in-process p50 / p95, OpenVINO", f"{ms('ov'):.1f} / {ms('ov', 95):.1f} ms", ""),
        ("in-process p50 / p95, CPU provider", f"{ms('cpu'):.1f} / {ms('cpu', 95):.1f} ms",
         f"CPU/OpenVINO p50 = {ms('cpu') / ms('ov'):.2f}x"),
        ("inference only p50, OpenVINO / CPU", f"{ms('ov_run'):.1f} / {ms('cpu_run'):.1f} ms",
         f"CPU/OpenVINO = {ms('cpu_run') / ms('ov_run'):.2f}x"),
    ]
    for c in (1, 4):
        local, remote, failed = http_figures[c]
        rows.append((f"throughput c={c}: in-process / HTTP",
                     f"{local:.1f} / {remote:.1f} req/s"
                     + (f" ({failed} non-200)" if failed else ""),
                     f"overhead {local / remote:.2f}x"))
    per_request_ms = statistics.median(per_request) * 1000
    rows.append(("session per request (seed) vs one session",
                 f"{per_request_ms:.1f} ms vs {ms('ov_run'):.1f} ms",
                 f"{per_request_ms / ms('ov_run'):.0f}x slower"))
    table(["measure", "value", "ratio"], rows)


if __name__ == "__main__":
    main()
