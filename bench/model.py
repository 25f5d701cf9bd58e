"""Budget check for a model package: parameters and single-image latency per provider.

Prints one table: the OpenVINO execution provider (device CPU) next to the plain CPU
provider, p50/p95 over repeated single-image runs after a warm-up, on this machine.

    python bench/model.py [--package samples/models/graffiti-sample-1.1.0.zip]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from infra.stats import percentile
from samples.package import read_package

log = logging.getLogger("bench.model")

PROVIDERS: tuple[str, ...] = ("OpenVINOExecutionProvider", "CPUExecutionProvider")
BUDGET_MS = 30.0
MAX_PARAMETERS = 3_000_000


def count_parameters(model_bytes: bytes) -> int:
    """Weights stored in the graph (after BatchNorm folding, as deployed)."""
    graph = onnx.load_from_string(model_bytes).graph
    return int(sum(np.prod(t.dims) for t in graph.initializer if len(t.dims) > 0))


def session(model_bytes: bytes, provider: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    provider_options = [{"device_type": "CPU"}] if provider.startswith("OpenVINO") else [{}]
    return ort.InferenceSession(
        model_bytes, options, providers=[provider], provider_options=provider_options
    )


def latency_ms(sess: ort.InferenceSession, image: np.ndarray, runs: int,
               warmup: int) -> list[float]:
    for _ in range(warmup):
        sess.run(["output0"], {"images": image})
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(["output0"], {"images": image})
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--package",
        type=Path,
        action="append",
        help="model zip; repeat for several (default: every shipped package)",
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    packages = args.package or sorted(
        (Path(__file__).resolve().parent.parent / "samples" / "models").glob("*.zip")
    )
    available = ort.get_available_providers()
    print(
        f"{'package':<30} {'params':>9} {'input':>9} {'provider':<26} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'budget':>7}"
    )
    ok = True
    for package in packages:
        manifest, model_bytes, _ = read_package(package)
        params = count_parameters(model_bytes)
        size = f"{manifest.input.width}x{manifest.input.height}"
        image = np.random.default_rng(0).random(
            (1, 3, manifest.input.height, manifest.input.width), dtype=np.float32
        )
        ok &= params <= MAX_PARAMETERS
        for provider in PROVIDERS:
            if provider not in available:
                print(
                    f"{package.name:<30} {params:>9} {size:>9} {provider:<26} "
                    f"{'n/a':>7} {'n/a':>7} {'-':>7}"
                )
                ok &= not provider.startswith("OpenVINO")
                continue
            times = latency_ms(
                session(model_bytes, provider, args.threads), image, args.runs, args.warmup
            )
            p50, p95 = percentile(times, 50), percentile(times, 95)
            gated = provider.startswith("OpenVINO")
            verdict = ("ok" if p50 <= BUDGET_MS else "OVER") if gated else "-"
            ok &= not gated or p50 <= BUDGET_MS
            print(
                f"{package.name:<30} {params:>9} {size:>9} {provider:<26} {p50:>7.2f} "
                f"{p95:>7.2f} {verdict:>7}"
            )
    print(
        f"budget: <= {MAX_PARAMETERS} parameters, OpenVINO p50 <= {BUDGET_MS:.0f} ms: "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
