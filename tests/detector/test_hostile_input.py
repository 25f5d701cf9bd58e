"""Hostile and odd input at the Web API, one test per mechanism (issue 16): bodies bounded
after decoding and per part, slow and idle connections closed, malformed requests logged on
one line, no 500 from edge values, images as phones send them, identifiers in the query and
route, redacted answers, and /healthz naming a worker that is not running."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import logging
import select
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector_module.imaging import decode, inspect
from infra.logs import KeyValueFormatter
from tests.detector.http import Reply, jpeg, multipart
from tests.detector.running import Running
from tests.support.polling import wait_until

MB = 1024 * 1024
Start = Callable[..., Running]


def peak_rss_reset() -> None:
    """Reset this process's peak resident size (VmHWM) to its current size."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def gzip_bomb(decoded_mb: int) -> bytes:
    """A gzip body of ``decoded_mb`` MB of zeros (about 1 KB per MB), built a MB at a time."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        block = bytes(MB)
        for _ in range(decoded_mb):
            gz.write(block)
    return out.getvalue()


def exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG of ``image`` with an APP1 Exif segment holding one orientation tag."""
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    payload = b"Exif\0\0" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encoded.tobytes()
    return data[:2] + segment + data[2:]


def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes; read the answer until it is complete (by its Content-Length) or the
    server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                break
    return answer


def closed_by_server(sock: socket.socket, timeout: float,
                     dribble: bytes | None = None) -> bool:
    """Whether the server closes ``sock`` within ``timeout``, sending one byte of ``dribble``
    every 0.1 s meanwhile (a client that sends its request slowly)."""
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionError:
                return True
        if dribble is not None and sent < len(dribble):
            try:
                sock.send(dribble[sent:sent + 1])
            except OSError:
                return True
            sent += 1
    return False


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, package: Path) -> Iterator[Running]:
    """One detector for the tests that change nothing in it (each checks it still scores)."""
    running = Running(tmp_path_factory.mktemp("shared"), package, {})
    assert running.service.wait_ready(20)
    yield running
    running.stop()


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every log record of the process while the test runs, at every level."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)
    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield got
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_compressed_bodies_are_refused_without_inflating_them(shared: Running) -> None:
    bomb = gzip_bomb(200)
    assert len(bomb) < 400_000
    replies: list[Reply] = []

    def post() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=30)
        try:
            conn.request("POST", "/score", body=bomb, headers={
                "Content-Type": "image/jpeg", "Content-Encoding": "gzip"})
            response = conn.getresponse()
            replies.append(Reply(response.status, {}, response.read()))
        finally:
            conn.close()
    peak_rss_reset()
    before = peak_rss_mb()
    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r.status for r in replies] == [415] * 8
    assert {r.json["error"] for r in replies} == {"unsupported_encoding"}
    assert "Content-Encoding 'gzip'" in replies[0].json["message"]
    assert peak_rss_mb() - before < 100, "a compressed body was inflated"
    assert shared.post("/score").status == 200


def test_multipart_parts_are_bounded_whatever_their_name(start: Start) -> None:
    running = start(server={"max_body_mb": 1})
    assert running.service.wait_ready(20)
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n").encode()
    tail = (f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"imageData\"\r\n\r\n"
            ).encode() + jpeg() + f"\r\n--{boundary}--\r\n".encode()
    sent = [0]

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(80):  # 5 MB in a field nobody asked for, chunked: no Content-Length
            sent[0] += 65536
            yield b"x" * 65536
        yield tail
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    try:
        conn.request("POST", "/image", body=body(), encode_chunked=True,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = conn.getresponse()
        reply = Reply(response.status, {}, response.read())
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed the connection instead of answering")
    finally:
        conn.close()
    assert (reply.status, reply.json["error"]) == (413, "body_too_large")
    assert running.post("/image", *multipart("imageData", jpeg())).status == 200


@pytest.mark.parametrize("shape", ["plain", "preamble", "second", "quoted-name", "no-type",
                                   "padding"])
def test_multipart_field_parser_takes_what_clients_send(shape: str) -> None:
    from detector_module.inputs import multipart_field

    data = b"\xff\xd8\xffimage\r\n--not-the-boundary\r\n\r\nstill image"
    disposition = 'form-data; name="imageData"; filename="f.jpg"'
    parts = [(disposition, data)]
    if shape == "second":
        parts.insert(0, ('form-data; name="meta"', b"{}"))
    if shape == "quoted-name":
        parts = [("form-data; name=imageData", data)]
    body = b"preamble text\r\n" if shape == "preamble" else b""
    for disp, content in parts:
        headers = f"Content-Disposition: {disp}\r\n"
        if shape != "no-type":
            headers += "Content-Type: image/jpeg\r\n"
        pad = "  " if shape == "padding" else ""
        body += f"--XyZ{pad}\r\n{headers}\r\n".encode() + content + b"\r\n"
    body += b"--XyZ--\r\n"
    assert multipart_field(body, 'multipart/form-data; boundary="XyZ"', "imageData") == data


def test_idle_and_slow_clients_are_disconnected(start: Start) -> None:
    running = start(server={"idle_timeout_s": 0.5, "body_timeout_s": 0.5})
    assert running.service.wait_ready(20)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as idle:
        assert closed_by_server(idle, 10), "an idle connection was kept"
    slow_header = b"POST /score HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 500
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as slow:
        assert closed_by_server(slow, 10, slow_header), "a slowly sent header was waited for"
    slow_body = raw_exchange(running.port, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8\xff")
    status_line = slow_body.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), slow_body[:200]
    assert b"body_timeout" in slow_body
    # A keep-alive client that sends requests in time keeps its connection.
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status": "alive"}'
    finally:
        conn.close()


@pytest.mark.parametrize("request_bytes", [
    b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"h" * 20000 + b"\r\n\r\n",
    b"GET /\x1b[31mred\nforged=line HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
], ids=["smuggling", "huge-header", "control-characters", "tls-hello"])
def test_malformed_requests_are_one_log_line_without_traceback(
        shared: Running, records: list[logging.LogRecord], request_bytes: bytes) -> None:
    answer = raw_exchange(shared.port, request_bytes)
    assert answer == b"" or answer[:10] in (b"HTTP/1.0 4", b"HTTP/1.1 4"), answer[:200]
    assert wait_until(lambda: any(r.getMessage() == "api.malformed_request" for r in records),
                      5), [r.getMessage() for r in records]
    formatter = KeyValueFormatter()
    for record in records:
        if not record.name.startswith(("detector_module", "aiohttp")):
            continue  # the rest of the process (other tests' detectors) is not judged here
        assert record.exc_info is None, record.getMessage()
        line = formatter.format(record)
        assert "\n" not in line and "\x1b" not in line, line
    assert shared.get("/healthz").status == 200


@pytest.mark.parametrize("ts", [
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "253402300800", "-62135596801",
    "1e20", "-1e20", "nan", "inf", "-inf", "1e308", "9" * 400, "2026-02-30T10:00:00Z",
])
def test_ts_at_the_edges_of_the_datetime_range_is_a_400(shared: Running, ts: str) -> None:
    from urllib.parse import quote

    reply = shared.post(f"/score?ts={quote(ts)}")
    assert (reply.status, reply.json["error"]) == (400, "bad_request"), reply.json
    assert len(reply.json["message"]) < 200


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 100, 0, 0, 54) + info + bytes(100)


def png_header(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
            + struct.pack(">I", zlib.crc32(ihdr)) + b"\0" * 64 + b"IEND\xaeB`\x82")


@pytest.mark.parametrize(("body", "status"), [
    (bmp_header(2_000_000, 10), 413), (bmp_header(10, 2_000_000), 413),
    (png_header(70_000, 10), 413), (bmp_header(3000, 3000), 400),
    (b"BM" + bytes(12) + struct.pack("<I", 7) + bytes(40), 400),
], ids=["bmp-wide", "bmp-tall", "png-wide", "bmp-short-data", "bmp-unknown-header"])
def test_image_headers_claiming_odd_sizes_are_4xx(shared: Running, body: bytes,
                                                  status: int) -> None:
    reply = shared.post("/score", body, "image/bmp")
    assert reply.status == status, reply.json
    assert shared.post("/score").status == 200


def test_jpeg_with_exif_orientation_scores_as_shown(shared: Running) -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[:100, :200] = (250, 250, 250)  # a mark in the top-left corner
    rotated = exif_jpeg(image, 6)  # shown turned 90 degrees clockwise
    reply = shared.post("/score", rotated)
    assert reply.status == 200, reply.json
    assert reply.json["image"] == {"width": 480, "height": 640}
    for orientation in range(1, 9):
        data = exif_jpeg(image, orientation)
        ours = decode(data, inspect(data, 40_000_000))
        opencv = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                              cv2.COLOR_BGR2RGB)  # OpenCV applies the orientation itself
        assert ours.shape == opencv.shape and np.array_equal(ours, opencv), orientation
    # Reduced-scale decoding (a frame much larger than the model input) is oriented too.
    big = exif_jpeg(np.zeros((960, 1280, 3), np.uint8), 8)
    assert decode(big, inspect(big, 40_000_000), (320, 320)).shape == (640, 480, 3)


def test_jpeg_with_bytes_after_its_end_marker_scores(shared: Running) -> None:
    plain = shared.post("/score").json
    trailing = shared.post("/score", jpeg() + b"\x00garbage after EOI" * 300)
    assert trailing.status == 200, trailing.json
    assert trailing.json["detections"] == plain["detections"]
    assert shared.post("/score", jpeg()[:-2] + b"\x00" * 3000).json["error"] == "bad_image"


@pytest.mark.parametrize(("path", "what"), [
    ("/%2E%2E/detect/iterations/It1/image", "project"),
    ("/proj%20ect/detect/iterations/It1/image", "project"),
    ("/4f1c/detect/iterations/It%0A1/image/nostore", "iteration"),
    ("/4f1c/detect/iterations/" + "i" * 65 + "/image", "iteration"),
    ("/score?camera_id=cam%2007", "camera_id"),
    ("/score?camera_id=..", "camera_id"),
])
def test_route_and_query_identifiers_are_checked(shared: Running, path: str, what: str) -> None:
    reply = shared.post(path, jpeg(), "application/octet-stream")
    assert (reply.status, reply.json["error"]) == (400, "bad_request"), reply.json
    assert reply.json["message"].startswith(what)


def test_answers_are_redacted(start: Start, package: Path, tmp_path: Path) -> None:
    odd = tmp_path / "drop?sv=1&sig=SECRETSIG" / "pkg.zip"
    odd.parent.mkdir()
    shutil.copy(package, odd)
    running = start(model=odd)
    assert running.service.wait_ready(20)
    model = running.get("/model")
    assert model.status == 200 and "SECRETSIG" not in model.body.decode()
    from urllib.parse import quote

    for ts in ("https://a.blob.core.windows.net/c?sv=1&sig=SECRETSIG", "AccountKey=SECRETSIG"):
        reply = running.post(f"/score?ts={quote(ts)}")
        assert reply.status == 400 and "SECRETSIG" not in reply.body.decode(), reply.json


def test_healthz_names_a_worker_that_is_not_running(api: Running) -> None:
    def broken() -> None:
        raise RuntimeError("loader broke")
    api.service._load = broken  # type: ignore[method-assign]
    api.service._reload_wanted.set()

    def degraded() -> dict | None:
        reply = api.get("/healthz")
        return reply.json if reply.status == 503 else None
    assert wait_until(degraded, 10)
    doc = degraded() or {}
    assert doc["status"] == "degraded" and doc["notRunning"] == ["model-loader"]
    assert "loader broke" in doc["workers"]["model-loader"]["lastError"]
    workers = api.reported()["workers"]
    assert workers["model-loader"]["state"] in ("restarting", "failed")
    assert workers["detector-api"]["state"] == "running"
    # The model in service keeps answering meanwhile.
    assert api.post("/score").status == 200
    assert json.loads(api.get("/readyz").body)["status"] == "ready"
