"""Where a model runs: an ONNX Runtime session (OpenVINO, CPU fallback) or a TFLite interpreter.

One backend is created per loaded model and reused for every request: creating an ONNX
Runtime session compiles the graph (the seed created one per request, ~100x slower).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from config.detector import InferenceSettings
from detector_module.package import ModelPackage
from infra.logs import event

log = logging.getLogger(__name__)

OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
TFLITE_EXTRA = "graffiti-edge[tflite]"

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
              "tensor(double)": "float64", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}
# OpenVINO's names for the precision hint (ov::hint::inference_precision).
_PRECISION_HINTS = {"FP32": "f32", "FP16": "f16", "BF16": "bf16"}


class BackendError(RuntimeError):
    """The model could not be opened at all (not even on the CPU provider)."""


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape (None for a dynamic axis) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class InferenceOptions:
    """The twin's `inference` section, as the backend needs it."""

    device: str = "CPU"
    precision: str = "default"
    num_threads: int = 0
    cache_dir: Path | None = None
    use_openvino: bool = True

    @classmethod
    def from_settings(cls, inference: InferenceSettings) -> InferenceOptions:
        return cls(device=inference.device, precision=inference.precision,
                   num_threads=inference.num_threads, cache_dir=inference.cache_dir)


class Backend(ABC):
    """Runs one model: named numpy inputs in, named numpy outputs out. Thread-safe."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, str]
    providers: list[str]
    fallback_reason: str | None = None
    provider_options: dict[str, str]
    runtime: str

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for one batch."""


def _dims(shape: Iterable[object]) -> tuple[int | None, ...]:
    """Static sizes; a dynamic axis (a name or None from ONNX Runtime, or a size below 1)
    is None."""
    return tuple(int(d) if isinstance(d, int | np.integer) and d > 0 else None for d in shape)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def openvino_provider_options(options: InferenceOptions) -> dict[str, str]:
    """Provider options as onnxruntime-openvino 1.23+ takes them.

    ``device_type`` and ``cache_dir`` are plain options; the precision hint and the thread
    count go through ``load_config`` (OpenVINO properties per device), which replaced the
    deprecated ``precision`` and ``num_of_threads`` options. The plain ``precision`` option
    is also stricter: FP16 on a CPU makes the provider refuse to start, while the hint lets
    OpenVINO pick what the CPU supports.

    ``default`` means what OpenVINO itself does: bf16 on CPUs that compute it natively, else
    f32. ONNX Runtime's provider would otherwise pin a CPU to f32, which halves the speed of
    a convolutional model on such CPUs (measured in bench/detector.py).
    """
    provider: dict[str, str] = {"device_type": options.device}
    if options.cache_dir is not None and str(options.cache_dir) not in ("", "."):
        try:
            options.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            event(log, logging.WARNING, "inference.cache_unavailable",
                  cache_dir=options.cache_dir, error=str(exc), action="compiling uncached")
        else:
            provider["cache_dir"] = str(options.cache_dir)
    properties: dict[str, str] = {}
    device = options.device.split(":")[0]
    if options.precision in _PRECISION_HINTS:
        properties["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[options.precision]
    elif options.precision == "ACCURACY":
        properties["EXECUTION_MODE_HINT"] = "ACCURACY"
    elif device == "CPU" and native_bf16():
        properties["INFERENCE_PRECISION_HINT"] = "bf16"
    if options.num_threads and device in ("CPU", "AUTO"):
        properties["INFERENCE_NUM_THREADS"] = str(options.num_threads)
    if properties:
        provider["load_config"] = json.dumps({device: properties})
    return provider


class OnnxBackend(Backend):
    """An ONNX Runtime session, on the OpenVINO provider when it takes the model and device."""

    runtime = "onnx"

    def __init__(self, model: bytes, options: InferenceOptions, *, label: str = "model") -> None:
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        # Idle ORT worker threads spin by default; on a 2-core box shared with the camera
        # module that burns the CPU the other inference and the decoder need.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if options.num_threads:
            session_options.intra_op_num_threads = options.num_threads
        available = options.use_openvino and OPENVINO in ort.get_available_providers()
        self.provider_options = openvino_provider_options(options) if available else {}
        self.session, self.fallback_reason = self._open(model, options, session_options,
                                                        self.provider_options, label)
        self.providers = list(self.session.get_providers())
        self.inputs = [TensorInfo(i.name, _dims(i.shape), _ORT_TYPES.get(i.type, "float32"))
                       for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, _dims(o.shape), _ORT_TYPES.get(o.type, "float32"))
                        for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._output_names = [o.name for o in self.outputs]

    @staticmethod
    def _open(model: bytes, options: InferenceOptions, session_options: ort.SessionOptions,
              provider_options: dict[str, str],
              label: str) -> tuple[ort.InferenceSession, str | None]:
        if not options.use_openvino:
            return ort.InferenceSession(model, session_options, providers=[CPU]), None
        if OPENVINO not in ort.get_available_providers():
            reason = ("this onnxruntime build has no OpenVINO provider (onnxruntime-openvino "
                      "is x86-64 only; on x86-64 plain onnxruntime may have replaced it)")
        else:
            try:
                session = ort.InferenceSession(model, session_options,
                                               providers=[OPENVINO, CPU],
                                               provider_options=[provider_options, {}])
            except Exception as exc:  # noqa: BLE001 - any OpenVINO failure means: fall back
                reason = f"OpenVINO could not compile the model: {str(exc).strip()[:300]}"
            else:
                if OPENVINO in session.get_providers():
                    return session, None
                reason = (f"OpenVINO could not start on device {options.device!r} with "
                          f"precision {options.precision!r} (device missing or option not "
                          "supported there; see the onnxruntime log line above)")
        event(log, logging.WARNING, "inference.provider_fallback", model=label,
              inference_device=options.device, reason=reason, provider=CPU)
        try:
            return ort.InferenceSession(model, session_options, providers=[CPU]), reason
        except Exception as exc:
            raise BackendError(f"the model cannot be opened: {str(exc).strip()[:300]}") from exc

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values, strict=True))


class TfliteBackend(Backend):
    """A TFLite interpreter (``ai-edge-litert``), for the seed's SSD MobileNet and its kin.

    The interpreter is not thread-safe, so runs are serialised; TFLite models here are small.
    """

    runtime = "tflite"

    def __init__(self, model: bytes, options: InferenceOptions) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendError(
                "TFLite models need the optional `tflite` extra: pip install "
                f"'{TFLITE_EXTRA}' (ai-edge-litert)") from exc
        self._interpreter = Interpreter(model_content=model,
                                        num_threads=options.num_threads or None)
        self._interpreter.allocate_tensors()
        self._lock = threading.Lock()
        self.providers = ["TFLite"]
        self.provider_options = {}
        self.metadata = {}
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        self._in = {d["name"]: d["index"] for d in inputs}
        self._out = [(d["name"], d["index"]) for d in outputs]
        self.inputs = [TensorInfo(d["name"], _dims(d["shape"]), np.dtype(d["dtype"]).name)
                       for d in inputs]
        self.outputs = [TensorInfo(d["name"], _dims(d["shape"]), np.dtype(d["dtype"]).name)
                        for d in outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            for name, value in feeds.items():
                self._interpreter.set_tensor(self._in[name], value)
            self._interpreter.invoke()
            return {name: self._interpreter.get_tensor(index).copy()
                    for name, index in self._out}


def open_backend(package: ModelPackage, options: InferenceOptions) -> Backend:
    """The backend for a package's model file (by extension)."""
    if package.runtime == "tflite":
        return TfliteBackend(package.model, options)
    return OnnxBackend(package.model, options, label=f"{package.name}:{package.version}")
