"""The Custom Vision compatible routes, so clients written for Custom Vision work unchanged.

Two kinds of client are served:

- the exported prediction container's: ``POST /image``, ``/{project}/image`` and their
  ``/url`` counterparts, each also with ``/nostore``;
- the prediction API's, as ``azure-cognitiveservices-vision-customvision`` builds it:
  ``{endpoint}/customvision/v3.0|v3.1/prediction/{project}/detect/iterations/{name}/image``
  (and ``/image/nostore``, ``/url``, ``/url/nostore``); the same paths without the prefix
  stay, as before. The ``classify`` variants answer 400 ``not_a_classifier``: every model
  here is an object detector.

Answers have the container's shape; errors add Custom Vision's ``code`` to the usual
``{"error", "message"}``, so the SDK raises ``CustomVisionErrorException`` with our message.
These routes return every tag above ``custom_vision.min_probability`` (the container's floor,
0.10), while the detection messages keep the twin's ``thresholds``. ``Prediction-Key`` is
ignored, or compared with ``custom_vision.prediction_key`` when one is set. The ``url``
routes are off unless ``custom_vision.url_enabled``; :mod:`detector_module.image_url` fetches
under its policy.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps

from aiohttp import web

from config.detector import DetectorSettings
from detector_module.api import MB, Api, Scored, json_answer
from detector_module.detection import PostProcess
from detector_module.image_url import UrlPolicy, fetch_image
from detector_module.inputs import ApiError, camera_id, frame_time, identifier, read_body

#: The prediction API's path prefixes; "" is the container's (and this module's before).
PREFIXES = ("", "/customvision/v3.0/prediction", "/customvision/v3.1/prediction")
KEY_HEADER = "Prediction-Key"
#: Custom Vision's error code (``CustomVisionErrorCodes``) for each error kind here.
CODES = {
    "bad_request": "BadRequest", "bad_image": "BadRequestImageFormat",
    "unsupported_media": "BadRequestImageFormat", "unsupported_encoding": "BadRequestImageFormat",
    "body_too_large": "BadRequestImageSizeBytes", "image_too_large": "BadRequestImageDimensions",
    "body_timeout": "BadRequestImageStream", "url_refused": "BadRequestImageUrl",
    "url_failed": "BadRequestImageUrl", "url_disabled": "BadRequestNotSupported",
    "not_a_classifier": "BadRequestNotSupported", "unauthorized": "Unauthorized",
    "no_model": "ErrorPredictionModelNotFound", "busy": "ErrorPredictionServiceUnavailable",
}
#: Bytes a ``url`` request's JSON body (``{"Url": "..."}``) may have.
URL_BODY_LIMIT = 16 * 1024

Method = Callable[["CustomVisionApi", web.Request], Awaitable[web.Response]]


def _guarded(method: Method) -> Method:
    """A Custom Vision route: its key checked first, its errors carrying Custom Vision's code."""
    @wraps(method)
    async def guarded(self: CustomVisionApi, request: web.Request) -> web.Response:
        try:
            self.check_key(request)
            return await method(self, request)
        except ApiError as exc:
            exc.fields = {"code": CODES.get(exc.kind, "ErrorUnknown")}
            raise
    return guarded


class CustomVisionApi:
    """The routes over the shared :class:`Api` (scoring, settings, the model slot)."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def routes(self) -> list[web.RouteDef]:
        routes = [web.post("/image", self.detect_image),
                  web.post("/image/nostore", self.detect_image),
                  web.post("/url", self.detect_url), web.post("/url/nostore", self.detect_url)]
        for prefix in PREFIXES:
            for store in ("", "/nostore"):
                routes += [
                    web.post(f"{prefix}/{{project}}/image{store}", self.detect_image),
                    web.post(f"{prefix}/{{project}}/url{store}", self.detect_url),
                    web.post(f"{prefix}/{{project}}/detect/iterations/{{iteration}}/image{store}",
                             self.detect_image),
                    web.post(f"{prefix}/{{project}}/detect/iterations/{{iteration}}/url{store}",
                             self.detect_url),
                    web.post(f"{prefix}/{{project}}/classify/iterations/{{iteration}}/image"
                             f"{store}", self.classify),
                    web.post(f"{prefix}/{{project}}/classify/iterations/{{iteration}}/url"
                             f"{store}", self.classify),
                ]
        return routes

    def check_key(self, request: web.Request) -> None:
        """401 unless the request's Prediction-Key is the one set (none set: any passes)."""
        key = self._api.settings.custom_vision.prediction_key
        if key is None or not key.get_secret_value():
            return
        given = request.headers.get(KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", f"the {KEY_HEADER} header is missing or wrong "
                           "(custom_vision.prediction_key is set)")

    @_guarded
    async def detect_image(self, request: web.Request) -> web.Response:
        """An uploaded image: raw body or multipart ``imageData``, as the SDK sends it."""
        names = _names(request)
        return await self._predict(request, names, await self._api.upload(request))

    @_guarded
    async def detect_url(self, request: web.Request) -> web.Response:
        """``{"Url": "..."}``: the detector fetches the image, if the settings let it."""
        names = _names(request)
        settings = self._api.settings
        if not settings.custom_vision.url_enabled:
            raise ApiError(403, "url_disabled", "the url routes are off: set "
                           "custom_vision.url_enabled and custom_vision.url_allowed_hosts to "
                           "let the detector fetch images")
        server = settings.server
        body = await read_body(request, URL_BODY_LIMIT, server.body_timeout_s)
        policy = UrlPolicy.of(settings.custom_vision.url_allowed_hosts,
                              int(server.max_body_mb * MB), server.body_timeout_s)
        return await self._predict(request, names, await fetch_image(_url_of(body), policy))

    @_guarded
    async def classify(self, request: web.Request) -> web.Response:
        _names(request)
        model = self._api.serving()
        raise ApiError(400, "not_a_classifier", f"the model {model.package.name} "
                       f"{model.package.version} is an object detector: use the "
                       "detect/iterations/{name}/image route")

    async def _predict(self, request: web.Request, names: tuple[str, str],
                       data: bytes) -> web.Response:
        camera, stamp = camera_id(request), frame_time(request.query.get("ts"))
        scored = await self._api.detect(data, camera, stamp, _floor)
        return json_answer(_prediction(scored, *names))


def _names(request: web.Request) -> tuple[str, str]:
    """The project and iteration a route names (empty where it names none), checked."""
    route = request.match_info
    project = identifier(route["project"], "project") if "project" in route else ""
    iteration = identifier(route["iteration"], "iteration") if "iteration" in route else ""
    return project, iteration


def _url_of(body: bytes) -> str:
    """The URL of an ``ImageUrl`` body (the SDK writes ``Url``; either case is taken)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    url = next((doc[k] for k in ("Url", "url") if k in doc), None) if isinstance(doc, dict) \
        else None
    if not isinstance(url, str):
        raise ApiError(400, "bad_request", 'the body must be JSON {"Url": "<image URL>"}')
    return url


def _floor(settings: DetectorSettings) -> PostProcess:
    """Every tag above ``custom_vision.min_probability``, the twin's NMS and cap."""
    thresholds = settings.thresholds
    return PostProcess(min_score=settings.custom_vision.min_probability,
                       nms_iou=thresholds.nms_iou, max_detections=thresholds.max_detections)


def _prediction(scored: Scored, project: str, iteration: str) -> dict[str, object]:
    """The container's ``ImagePrediction`` (``tagId`` is the class index, as it answers)."""
    return {
        "id": str(uuid.uuid4()),
        "project": project,
        "iteration": iteration,
        "created": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "predictions": [{
            "probability": round(d.score, 8), "tagId": d.class_id, "tagName": d.label,
            "boundingBox": {"left": round(d.box[0], 8), "top": round(d.box[1], 8),
                            "width": round(d.box[2] - d.box[0], 8),
                            "height": round(d.box[3] - d.box[1], 8)},
        } for d in scored.detections],
    }
