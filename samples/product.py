"""The product's own detector and trigger, as the sample tools run them.

The evaluation must measure what a deployment gets, so nothing here decodes a model output
or thresholds a score itself: a package is opened by ``detector_module`` (package loading,
backend on the OpenVINO provider, the format's adapter, the shared post-processing), video
frames reach it the way the camera module sends them (scaled to cover the model input, JPEG
at the twin's quality, decoded by the detector's image code), and events come from the
camera's :class:`~camera_module.trigger.Trigger` under the shipped twin settings
(``config/camera.yaml``, ``config/detector.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from camera_module.detector import encode_jpeg, scaled_size
from config.camera import CameraSettings
from config.detector import DetectorSettings
from config.layers import load_yaml_file
from contracts.detection import Detection
from detector_module.backends import InferenceOptions
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, load_model
from detector_module.imaging import decode, inspect
from detector_module.package import load_package

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
OPENVINO = "OpenVINOExecutionProvider"
#: Lowest score kept. Everything above it is scored once; each threshold the evaluation
#: looks at is a filter over these (greedy NMS keeps a box whatever lies below its score,
#: so the boxes above any threshold are exactly those a run at that threshold returns).
FLOOR = 0.01


def camera_twin(path: Path = CONFIG_DIR / "camera.yaml") -> CameraSettings:
    """The shipped camera twin (the demo's), validated by the camera module's own model."""
    doc, _ = load_yaml_file(path)
    return CameraSettings.model_validate(doc)


def detector_twin(path: Path = CONFIG_DIR / "detector.yaml") -> DetectorSettings:
    """The shipped detector twin: its NMS overlap and detection cap apply here too."""
    doc, _ = load_yaml_file(path)
    return DetectorSettings.model_validate(doc)


@dataclass(frozen=True)
class Found:
    """Detections of one image above :data:`FLOOR`: normalised xyxy boxes and scores."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, detections: list[Detection]) -> Found:
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        return cls(boxes, np.array([d.score for d in detections], np.float64))

    def above(self, threshold: float) -> Found:
        keep = self.scores >= threshold
        return Found(self.boxes[keep], self.scores[keep])


class ProductDetector:
    """One package loaded by the detector module, scoring stills and camera frames."""

    def __init__(self, package: Path, provider: str = OPENVINO, threads: int = 1) -> None:
        options = InferenceOptions(num_threads=threads, use_openvino=provider == OPENVINO)
        self.model: LoadedModel = load_model(load_package(package), options)
        thresholds = detector_twin().thresholds
        self.params = PostProcess(min_score=FLOOR, nms_iou=thresholds.nms_iou,
                                  max_detections=thresholds.max_detections)
        self.jpeg_quality = camera_twin().sampling.jpeg_quality
        self.max_pixels = detector_twin().server.max_pixels

    @property
    def default_min_score(self) -> float:
        score = self.model.package.manifest.default_min_score
        return 0.5 if score is None else score

    @property
    def providers(self) -> list[str]:
        return list(self.model.backend.providers)

    def still(self, image: np.ndarray) -> Found:
        """An RGB uint8 image as posted to the detector's API (no camera in between)."""
        return Found.of(self.model.detect(image, self.params))

    def frame(self, frame: av.VideoFrame) -> Found:
        """A decoded stream frame on the camera module's road: scale, JPEG, detector."""
        spec = self.model.adapter.spec
        size = scaled_size(frame.width, frame.height, spec.width, spec.height)
        jpeg = encode_jpeg(frame, size, self.jpeg_quality)
        image = decode(jpeg, inspect(jpeg, self.max_pixels), (spec.width, spec.height))
        return Found.of(self.model.detect(image, self.params))
