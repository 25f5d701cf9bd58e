"""A loaded model (package + backend + adapter) and the slot that swaps it without a gap.

A model is opened once, warmed up with one inference (OpenVINO compiles lazily, so the first
real request would otherwise pay for it), sanity-checked, and only then made current.
Requests take the current model at their start and finish on it even if a newer one is
swapped in meanwhile; the old session is freed when its last request is done. A model that
can hang or exhaust memory while doing so is caught first by its trial run
(:mod:`detector_module.trial`), which runs these same functions in a child process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from contracts.detection import Detection
from detector_module.adapters import Adapter, adapter_for
from detector_module.backends import Backend, BackendError, InferenceOptions, open_backend
from detector_module.detection import PostProcess, postprocess
from detector_module.package import MAX_INPUT_SIDE, ModelPackage
from infra.logs import event

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model ready to serve. Thread-safe: requests share it."""

    package: ModelPackage
    backend: Backend
    adapter: Adapter
    options: InferenceOptions
    load_seconds: float
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def detect(self, image: np.ndarray, params: PostProcess) -> list[Detection]:
        """Detections on an RGB uint8 HxWx3 image under the given thresholds."""
        return postprocess(self.adapter.infer(image, params.floor), self.adapter.labels, params)

    def info(self) -> dict[str, Any]:
        spec = self.adapter.spec
        return {
            "name": self.package.name, "version": self.package.version,
            "format": self.adapter.format, "runtime": self.backend.runtime,
            "input": {"width": spec.width, "height": spec.height, "layout": spec.layout,
                      "color_order": spec.color_order, "resize": spec.resize},
            "labels": list(self.adapter.labels), "providers": list(self.backend.providers),
            "device": self.options.device, "precision": self.options.precision,
            "num_threads": self.options.num_threads,
            "openvino_options": self.backend.provider_options,
            "fallback_reason": self.backend.fallback_reason,
            "default_min_score": self.package.manifest.default_min_score,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "load_seconds": round(self.load_seconds, 3), "source": str(self.package.source),
        }


def load_model(package: ModelPackage, options: InferenceOptions) -> LoadedModel:
    """Open, recognise and warm up a model; raises BackendError, AdapterError on failure."""
    started = time.perf_counter()
    backend = open_backend(package, options)
    adapter = adapter_for(backend, package)
    spec = adapter.spec
    if max(spec.width, spec.height) > MAX_INPUT_SIDE:
        raise BackendError(f"the model input {spec.width}x{spec.height} has a side over "
                           f"{MAX_INPUT_SIDE} pixels")
    try:
        adapter.infer(np.full((spec.height, spec.width, 3), 114, np.uint8), floor=1.0)
    except Exception as exc:  # noqa: BLE001 - e.g. a manifest size the model does not take
        raise BackendError(f"warm-up inference failed ({adapter.format}, input "
                           f"{spec.width}x{spec.height}): {str(exc).strip()[:300]}") from exc
    model = LoadedModel(package, backend, adapter, options, time.perf_counter() - started)
    event(log, logging.INFO, "model.loaded", model=package.name, version=package.version,
          format=adapter.format, providers=",".join(backend.providers),
          inference_device=options.device, seconds=round(model.load_seconds, 3))
    return model


def sanity_check(model: LoadedModel) -> None:
    """Run a synthetic 640x480 scene through the full pipeline; raise BackendError if the raw
    outputs are not finite or a detection is impossible (a score outside 0..1)."""
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([(x * 255 // 639), (y * 255 // 479), ((x + y) % 256)], -1).astype(np.uint8)
    image[160:320, 200:440] = (200, 40, 160)
    outputs, geometry = model.adapter.run(image)
    for name, value in outputs.items():
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise BackendError(f"the model's output {name!r} holds NaN or infinite values "
                               "on the sanity image")
    try:
        postprocess(model.adapter.decode(outputs, geometry, 0.0), model.adapter.labels,
                    PostProcess(min_score=0.0))
    except ValidationError as exc:  # the Detection contract refused a score or class id
        raise BackendError(f"sanity image gave an impossible detection: "
                           f"{exc.errors()[0]['msg']}") from exc
    if not model.adapter.labels:
        raise BackendError("the model has no labels")


class ModelSlot:
    """The model in service. Reading ``current`` is a single attribute read (no lock)."""

    def __init__(self) -> None:
        self.current: LoadedModel | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old, self.current, self.error = self.current, model, None
        return old

    def fail(self, reason: str) -> None:
        with self._lock:
            self.error = reason
