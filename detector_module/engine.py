"""A loaded model (package + backend + adapter) and the slot that swaps it without a gap.

A model is opened once, warmed up with one inference (OpenVINO compiles lazily, so the first
real request would otherwise pay for it), and only then made current. Requests take the
current model at their start and finish on it even if a newer one is swapped in meanwhile;
the old session is freed when its last request is done.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from contracts.detection import Detection
from detector_module.adapters import Adapter, adapter_for
from detector_module.backends import Backend, BackendError, InferenceOptions, open_backend
from detector_module.detection import PostProcess, postprocess
from detector_module.package import ModelPackage
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
