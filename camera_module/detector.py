"""The detector module's Web API as the camera uses it: /model once, /score per sample.

The stdlib HTTP client is enough for one small request at a time and keeps the camera's
dependencies to PyAV, OpenCV and numpy. Frames are scaled down before JPEG encoding to what
the model will use anyway (``GET /model`` gives its input size), so a 1080p camera sends a
few tens of kilobytes per sample instead of a full-size JPEG.

Every answer is untrusted input: it is validated once, here, against :class:`ModelAnswer` or
:class:`ScoreAnswer`, and anything that does not fit (``"inference_ms": "fast"``, a score of
1.0134, a box with three numbers) is a :class:`DetectorError`, counted like a timeout, so no
odd answer can reach a worker thread as an exception.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import av
import cv2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.clip import ModelInfo
from contracts.detection import Detection

A = TypeVar("A", bound=BaseModel)


class DetectorError(Exception):
    """The detector did not answer usefully (down, slow, 4xx/5xx, bad JSON)."""


class _Answer(BaseModel):
    # Fields the camera does not use are let be (the detector may add some); the ones it
    # uses are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)


class InputSize(_Answer):
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)


class ModelAnswer(_Answer):
    """``GET /model``: who the model is and the input size frames are scaled to."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    input: InputSize


class AnswerModel(_Answer):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)


class ScoreAnswer(_Answer):
    """``POST /score``: the model that answered, how long it took, and its detections."""

    model: AnswerModel
    inference_ms: float | None = Field(None, ge=0)
    detections: list[Detection]


def _validated(kind: type[A], doc: Any, what: str) -> A:
    try:
        return kind.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                             for e in exc.errors()[:3])
        raise DetectorError(f"{what} answer is malformed: {problems}") from None


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
        answer = _validated(ModelAnswer, doc, "/model")
        self.model = ServedModel(ModelInfo(name=answer.name, version=answer.version),
                                 answer.input.width, answer.input.height)
        return self.model

    def score(self, jpeg: bytes, camera_id: str, ts: datetime) -> Scored:
        query = urlencode({"camera_id": camera_id, "ts": ts.isoformat()})
        request = urllib.request.Request(f"{self.base_url}/score?{query}", data=jpeg,
                                         method="POST",
                                         headers={"Content-Type": "image/jpeg"})
        answer = _validated(ScoreAnswer, self._request(request), "/score")
        model = ModelInfo(name=answer.model.name, version=answer.model.version)
        if self.model is not None and model.version != self.model.info.version:
            self.model = None  # the detector swapped models: ask /model again
        return Scored(model, list(answer.detections))
