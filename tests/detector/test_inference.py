"""The ONNX Runtime session: OpenVINO in force, fallbacks that say why, options, one session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detector_module import backends
from detector_module.backends import (
    CPU,
    OPENVINO,
    InferenceOptions,
    OnnxBackend,
    openvino_provider_options,
)
from tests.detector.conftest import Loader, detect
from tests.detector.models import yolov8_model

MODEL = yolov8_model([[160, 160, 64, 32, 0.9]], 1)


def test_openvino_provider_runs_the_session_by_default() -> None:
    backend = OnnxBackend(MODEL, InferenceOptions(cache_dir=None))
    assert backend.providers[0] == OPENVINO
    assert backend.fallback_reason is None


def test_unavailable_device_falls_back_to_cpu_and_says_why() -> None:
    backend = OnnxBackend(MODEL, InferenceOptions(device="GPU", cache_dir=None))
    assert backend.providers == [CPU]
    assert backend.fallback_reason is not None and "'GPU'" in backend.fallback_reason
    out = backend.run({"images": np.zeros((1, 3, 320, 320), np.float32)})
    assert out["output0"].shape == (1, 5, 64)


def test_model_openvino_cannot_compile_falls_back_with_the_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def bogus(options: InferenceOptions) -> dict[str, str]:
        return {"device_type": "CPU", "load_config": json.dumps({"CPU": {"NO_SUCH_KEY": "1"}})}
    monkeypatch.setattr(backends, "openvino_provider_options", bogus)
    backend = OnnxBackend(MODEL, InferenceOptions(cache_dir=None))
    assert backend.providers == [CPU]
    assert backend.fallback_reason is not None
    assert backend.fallback_reason.startswith("OpenVINO could not compile the model")


def test_provider_options_use_load_config_and_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "ov_cache"
    options = InferenceOptions(device="CPU", precision="FP16", num_threads=2, cache_dir=cache)
    provider = openvino_provider_options(options)
    assert provider["device_type"] == "CPU" and provider["cache_dir"] == str(cache)
    assert json.loads(provider["load_config"]) == {
        "CPU": {"INFERENCE_PRECISION_HINT": "f16", "INFERENCE_NUM_THREADS": "2"}}
    assert json.loads(openvino_provider_options(InferenceOptions(
        device="AUTO:GPU,CPU", precision="ACCURACY", cache_dir=None))["load_config"]) == {
        "AUTO": {"EXECUTION_MODE_HINT": "ACCURACY"}}
    # FP16 as a hint is accepted by a CPU (OpenVINO picks what it supports) and the compiled
    # model lands in the cache folder, so a restart does not compile again.
    backend = OnnxBackend(MODEL, options)
    assert backend.providers[0] == OPENVINO
    assert list(cache.glob("*.blob"))


def test_default_precision_is_what_openvino_does_natively(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime's provider pins a CPU to f32; OpenVINO itself uses bf16 where native."""
    monkeypatch.setattr(backends, "native_bf16", lambda: True)
    provider = openvino_provider_options(InferenceOptions(cache_dir=None))
    assert json.loads(provider["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}
    assert "load_config" not in openvino_provider_options(
        InferenceOptions(device="GPU", cache_dir=None))
    monkeypatch.setattr(backends, "native_bf16", lambda: False)
    assert "load_config" not in openvino_provider_options(InferenceOptions(cache_dir=None))


def test_one_session_per_model_never_per_request(load: Loader,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[object] = []
    real = ort.InferenceSession

    def counting(*args: object, **kwargs: object) -> ort.InferenceSession:
        session = real(*args, **kwargs)  # type: ignore[arg-type]
        created.append(session)
        return session
    monkeypatch.setattr(backends.ort, "InferenceSession", counting)
    model = load(MODEL, ["graffiti"])
    for _ in range(5):
        assert len(detect(model, 640, 480)) == 1
    assert len(created) == 1
