"""The detector module's Web API as the camera uses it: /model once, /score per sample.

The stdlib HTTP client is enough for one small request at a time and keeps the camera's
dependencies to PyAV, OpenCV and numpy. Frames are scaled down before JPEG encoding to what
the model will use anyway (``GET /model`` gives its input size), so a 1080p camera sends a
few tens of kilobytes per sample instead of a full-size JPEG.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import av
import cv2

from contracts.clip import ModelInfo
from contracts.detection import Detection


class DetectorError(Exception):
    """The detector did not answer usefully (down, slow, 4xx/5xx, bad JSON)."""


@dataclass(frozen=True)
class ServedModel:
    """The model ``GET /model`` describes: who it is, and the input size frames are scaled to
    (a frame smaller than that would lose detail, a larger one is wasted bandwidth)."""

    info: ModelInfo
    width: int
    height: int


@dataclass(frozen=True)
class Scored:
    model: ModelInfo
    detections: list[Detection]


def scaled_size(width: int, height: int, model_w: int, model_h: int) -> tuple[int, int]:
    """The smallest size, keeping the aspect ratio, that still covers the model's input.

    Never upscales; even sizes, since the scaler and JPEG encoder prefer them."""
    scale = min(1.0, max(model_w / width, model_h / height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def encode_jpeg(frame: av.VideoFrame, size: tuple[int, int], quality: int) -> bytes:
    """Scale and convert in one swscale pass, then JPEG; the only pixels the camera makes.

    Fast bilinear is plenty for a model input that is being shrunk 3-6x anyway."""
    image = frame.reformat(width=size[0], height=size[1], format="bgr24",
                           interpolation="FAST_BILINEAR").to_ndarray()
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DetectorError("JPEG encoding failed")
    return jpeg.tobytes()


class DetectorClient:
    """Talks to one detector base URL with a per-request timeout."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.model: ServedModel | None = None

    def _request(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode(errors="replace")
            raise DetectorError(f"HTTP {exc.code} from {request.full_url}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DetectorError(f"{request.full_url}: {exc}") from None

    def fetch_model(self) -> ServedModel:
        doc = self._request(urllib.request.Request(f"{self.base_url}/model"))
        try:
            info = ModelInfo(name=str(doc["name"]), version=str(doc["version"]))
            self.model = ServedModel(info, int(doc["input"]["width"]),
                                     int(doc["input"]["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"/model answer lacks {exc}") from None
        return self.model

    def score(self, jpeg: bytes, camera_id: str, ts: datetime) -> Scored:
        query = urlencode({"camera_id": camera_id, "ts": ts.isoformat()})
        request = urllib.request.Request(f"{self.base_url}/score?{query}", data=jpeg,
                                         method="POST",
                                         headers={"Content-Type": "image/jpeg"})
        doc = self._request(request)
        try:
            model = ModelInfo(name=str(doc["model"]["name"]),
                              version=str(doc["model"]["version"]))
            detections = [Detection(str(d["label"]), int(d["class_id"]), float(d["score"]),
                                    (float(d["box"][0]), float(d["box"][1]),
                                     float(d["box"][2]), float(d["box"][3])))
                          for d in doc["detections"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DetectorError(f"/score answer is malformed: {exc}") from None
        if self.model is not None and model.version != self.model.info.version:
            self.model = None  # the detector swapped models: ask /model again
        return Scored(model, detections)
