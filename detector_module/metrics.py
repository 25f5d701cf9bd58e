"""The detector's counters and inference latency histogram, as Prometheus text for
``/metrics`` (:mod:`infra.prometheus` has why it is written by hand)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from infra.prometheus import labels

# Inference latency buckets in seconds: 5 ms (a small model on a fast CPU) to 5 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Counters and the inference latency histogram. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self._bucket_counts = [0] * len(BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0

    def request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def event(self, outcome: str) -> None:
        with self._lock:
            self.events[outcome] += 1

    def inference(self, seconds: float) -> None:
        with self._lock:
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._bucket_counts[i] += 1

    def render(self, model: dict[str, Any] | None, in_flight: int) -> str:
        """The exposition text (format 0.0.4)."""
        lines = ["# HELP detector_requests_total HTTP requests by route and status code.",
                 "# TYPE detector_requests_total counter"]
        with self._lock:
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f"detector_requests_total{labels(route=route, code=status)} {n}")
            lines += ["# HELP detector_errors_total Failed requests by kind.",
                      "# TYPE detector_errors_total counter"]
            for kind, n in sorted(self.errors.items()):
                lines.append(f"detector_errors_total{labels(kind=kind)} {n}")
            lines += ["# HELP detector_inference_seconds Time to decode, run and post-process "
                      "one image.", "# TYPE detector_inference_seconds histogram"]
            for bound, n in zip(BUCKETS, self._bucket_counts, strict=True):
                lines.append(f"detector_inference_seconds_bucket{labels(le=bound)} {n}")
            lines += [f'detector_inference_seconds_bucket{{le="+Inf"}} {self._latency_count}',
                      f"detector_inference_seconds_sum {self._latency_sum:.6f}",
                      f"detector_inference_seconds_count {self._latency_count}",
                      "# HELP detector_events_total Detection messages sent or held back by "
                      "the per-camera rate limit.", "# TYPE detector_events_total counter"]
            for outcome, n in sorted(self.events.items()):
                lines.append(f"detector_events_total{labels(outcome=outcome)} {n}")
        lines += ["# HELP detector_in_flight Requests being scored now.",
                  "# TYPE detector_in_flight gauge", f"detector_in_flight {in_flight}",
                  "# HELP detector_model_info The model in service (value 1).",
                  "# TYPE detector_model_info gauge"]
        if model is not None:
            info = labels(name=model["name"], version=model["version"],
                           format=model["format"], provider=model["providers"][0])
            lines.append(f"detector_model_info{info} 1")
        lines += ["# HELP detector_model_loaded 1 when a model is loaded and serving.",
                  "# TYPE detector_model_loaded gauge",
                  f"detector_model_loaded {int(model is not None)}"]
        return "\n".join(lines) + "\n"
