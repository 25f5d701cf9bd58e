"""Custom Vision's own Python client, ``azure-cognitiveservices-vision-customvision``, against
a running detector: its v3.1 prediction paths, the ``url`` routes and their policy, the
Prediction-Key, the probability floor, and errors it raises with our message."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.prediction import (
    CustomVisionPredictionClient,
)
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException,
)
from msrest.authentication import ApiKeyCredentials

from detector_module.image_url import CheckedResolver, RefusedAddress, forbidden
from local_run.processes import free_port
from tests.detector.http import jpeg
from tests.detector.models import ROWS, sample_manifest, write_package, yolov8_model
from tests.detector.running import Running
from tests.detector.test_api import GRAFFITI_BOX, png_bomb
from tests.support.polling import wait_until

PROJECT, ITERATION = "4f1c", "Iteration3"
BODY_MB = 0.05  # the upload limit, and so the limit of a fetched image
FRAME = jpeg()
BIG = b"\xff\xd8\xff" + b"\0" * 100_000  # over BODY_MB


class ImageServer(http.server.ThreadingHTTPServer):
    """Where the ``url`` routes fetch from: 127.0.0.1 on a free port, with redirects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.paths: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/frame.jpg": (200, {"Content-Type": "image/jpeg"}, FRAME),
            "/big.jpg": (200, {"Content-Type": "image/jpeg"}, BIG),
            "/bomb.png": (200, {"Content-Type": "image/png"}, png_bomb(20000, 20000)),
            "/hop": (302, {"Location": "/frame.jpg"}, b""),
            "/away": (302, {"Location": f"http://localhost:{self.port}/frame.jpg"}, b""),
            "/metadata": (307, {"Location": "http://169.254.169.254/metadata/instance"}, b""),
        }
        self.served: list[str] = []
        super().__init__(("127.0.0.1", self.port), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ImageServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.server.served.append(self.path)
        status, headers, body = self.server.paths.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the test reads ``served``."""


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _detector(root: Path, **twin: dict) -> Running:
    """The test model plus one weak box: graffiti at 0.3, under the twin's 0.5."""
    package = write_package(root / "graffiti-sample-1.0.0.zip",
                            yolov8_model([*ROWS, [260, 60, 30, 30, 0.3, 0.0]], 2),
                            ["graffiti", "person"], sample_manifest(320, 320))
    running = Running(root, package, twin)
    assert running.service.wait_ready(20)
    return running


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A detector with the default Custom Vision settings (url routes off, no key)."""
    running = _detector(tmp_path_factory.mktemp("plain"), events={"rate_limit_s": 0})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fetching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """url routes on, 127.0.0.1 and 169.254.169.254 allowed (the latter is refused anyway)."""
    running = _detector(tmp_path_factory.mktemp("fetching"),
                        server={"max_body_mb": BODY_MB},
                        custom_vision={"url_enabled": True,
                                       "url_allowed_hosts": ["127.0.0.1", "169.254.169.254"]})
    yield running
    running.stop()


def client(running: Running, key: str = "any-key") -> CustomVisionPredictionClient:
    """The SDK as its samples build it: an endpoint and a Prediction-key header."""
    return CustomVisionPredictionClient(f"http://127.0.0.1:{running.port}",
                                        ApiKeyCredentials(in_headers={"Prediction-key": key}))


def refusal(call: object, *args: object) -> CustomVisionErrorException:
    with pytest.raises(CustomVisionErrorException) as caught:
        call(PROJECT, ITERATION, *args)  # type: ignore[operator]
    return caught.value


def test_sdk_detects_uploads_with_the_containers_floor(plain: Running) -> None:
    sdk = client(plain)
    for call in (sdk.detect_image, sdk.detect_image_with_no_store):
        result = call(PROJECT, ITERATION, FRAME)
        assert (result.project, result.iteration) == (PROJECT, ITERATION)
        found = [(p.tag_name, round(p.probability, 2)) for p in result.predictions]
        # The floor is custom_vision.min_probability (0.10): the 0.3 graffiti box the twin's
        # 0.5 drops from /score is here too.
        assert found == [("graffiti", 0.9), ("person", 0.7), ("graffiti", 0.3)]
        box = result.predictions[0].bounding_box
        left, top, x2, y2 = GRAFFITI_BOX
        assert (box.left, box.top, box.width, box.height) == pytest.approx(
            (left, top, x2 - left, y2 - top), abs=1e-6)
    assert [d["label"] for d in plain.post("/score").json["detections"]] == ["graffiti",
                                                                            "person"]
    # The detection messages keep the twin's thresholds, whichever route scored.
    assert wait_until(lambda: len(plain.outputs()) >= 3, 5)
    for message in plain.outputs():
        assert [round(d["score"], 2) for d in message["body"]["detections"]] == [0.9, 0.7]


def test_the_floor_is_a_live_setting(plain: Running) -> None:
    plain.edit("custom_vision", min_probability=0.5)
    try:
        assert wait_until(lambda: len(client(plain).detect_image(
            PROJECT, ITERATION, FRAME).predictions) == 2, 5)
    finally:
        plain.edit("custom_vision", min_probability=None)
        assert wait_until(
            lambda: plain.runtime.settings.custom_vision.min_probability == 0.10, 5)


@pytest.mark.parametrize("path", [
    "/customvision/v3.0/prediction/4f1c/detect/iterations/It3/image/nostore",
    "/customvision/v3.1/prediction/4f1c/image", "/4f1c/image", "/4f1c/image/nostore"])
def test_every_prediction_path_answers(plain: Running, path: str) -> None:
    reply = plain.post(path, FRAME, "application/octet-stream")
    assert reply.status == 200, reply.json
    assert reply.json["project"] == "4f1c"
    assert reply.json["predictions"][0]["tagName"] == "graffiti"


def test_classify_on_a_detector_is_a_clear_refusal(plain: Running) -> None:
    sdk = client(plain)
    for call, arg in ((sdk.classify_image, FRAME), (sdk.classify_image_url, "http://x/y.jpg")):
        error = refusal(call, arg)
        assert error.response.status_code == 400
        assert error.error.code == "BadRequestNotSupported"
        assert "is an object detector" in str(error)


def test_url_routes_are_off_by_default_and_say_which_setting(plain: Running,
                                                             images: ImageServer) -> None:
    sdk = client(plain)
    for call in (sdk.detect_image_url, sdk.detect_image_url_with_no_store):
        error = refusal(call, images.url("/frame.jpg"))
        assert error.response.status_code == 403
        assert "custom_vision.url_enabled" in str(error)
    container = plain.post("/url", f'{{"Url": "{images.url("/frame.jpg")}"}}'.encode(),
                           "application/json")
    assert (container.status, container.json["error"]) == (403, "url_disabled")
    assert images.served == []


def test_url_routes_fetch_from_an_allowed_host(fetching: Running,
                                               images: ImageServer) -> None:
    sdk = client(fetching)
    for call, path in ((sdk.detect_image_url, "/frame.jpg"),
                       (sdk.detect_image_url_with_no_store, "/hop")):
        result = call(PROJECT, ITERATION, images.url(path))
        assert result.predictions[0].tag_name == "graffiti"
    assert images.served[-2:] == ["/hop", "/frame.jpg"]  # a redirect on the allowlist
    container = fetching.post("/4f1c/url/nostore",
                              f'{{"url": "{images.url("/frame.jpg")}"}}'.encode(),
                              "application/json")  # the exported container's route
    assert container.json["predictions"][0]["tagName"] == "graffiti"
    for body in (b"not json", b'{"Url": 7}', b"[]"):
        bad = fetching.post("/4f1c/url", body, "application/json")
        assert (bad.status, bad.json["code"]) == (400, "BadRequest"), bad.json


@pytest.mark.parametrize(("path", "status", "message", "fetched"), [
    ("http://localhost:{port}/frame.jpg", 400, "not on custom_vision.url_allowed_hosts", []),
    ("/away", 400, "not on custom_vision.url_allowed_hosts", ["/away"]),  # redirect off it
    ("/metadata", 400, "169.254.169.254", ["/metadata"]),  # redirect to a metadata address
    ("http://169.254.169.254/metadata/instance", 400, "never fetches from", []),
    ("file:///etc/passwd", 400, "not an http(s) URL", []),
    ("/missing.jpg", 400, "answered HTTP 404", ["/missing.jpg"]),
    ("/big.jpg", 413, "over the limit", ["/big.jpg"]),  # server.max_body_mb, as uploads
    ("/bomb.png", 413, "pixels", ["/bomb.png"]),  # server.max_pixels, as uploads
])
def test_url_routes_refuse_what_the_policy_and_limits_refuse(
        fetching: Running, images: ImageServer, path: str, status: int, message: str,
        fetched: list[str]) -> None:
    url = images.url(path) if path.startswith("/") else path.format(port=images.port)
    before = len(images.served)
    error = refusal(client(fetching).detect_image_url, url)
    assert error.response.status_code == status
    assert message in str(error)
    assert images.served[before:] == fetched


def test_a_prediction_key_when_set_is_required_and_never_shown(plain: Running) -> None:
    plain.edit("custom_vision", prediction_key="k3y-N0t-Sh0wn")
    try:
        assert wait_until(lambda: plain.runtime.settings.custom_vision.prediction_key, 5)
        error = refusal(client(plain, "wrong").detect_image, FRAME)
        assert (error.response.status_code, error.error.code) == (401, "Unauthorized")
        assert "Prediction-Key" in str(error)
        assert client(plain, "k3y-N0t-Sh0wn").detect_image(PROJECT, ITERATION, FRAME)
        assert plain.post("/score").status == 200  # the camera's route takes no key
        assert "k3y-N0t-Sh0wn" not in str(plain.reported())
    finally:
        plain.edit("custom_vision", prediction_key=None)
        assert wait_until(lambda: plain.runtime.settings.custom_vision.prediction_key is None,
                          5)


@pytest.mark.parametrize(("address", "refused"), [
    ("169.254.169.254", True), ("::ffff:169.254.169.254", True), ("fe80::1%eth0", True),
    ("168.63.129.16", True), ("0.0.0.0", True), ("::", True), ("224.0.0.251", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("::1", False)])
def test_which_addresses_are_never_fetched_from(address: str, refused: bool) -> None:
    assert forbidden(address) is refused


def test_the_resolver_checks_every_address_it_returns() -> None:
    """The connector connects to what the resolver returns, so the check cannot be raced."""
    async def resolve(host: str) -> list[str]:
        return [a["host"] for a in await CheckedResolver().resolve(host, 80)]
    with pytest.raises(RefusedAddress, match="169.254.169.254"):
        asyncio.run(resolve("169.254.169.254"))
    assert asyncio.run(resolve("127.0.0.1")) == ["127.0.0.1"]
