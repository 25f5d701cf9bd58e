"""Random requests against a running detector module (issue 16, classes 1-5): bodies,
content types and encodings, multipart parts, query strings, headers and raw request bytes.

The detector runs as its own process (``python -m detector_module``), so what is checked is
the module's own: for every example no 5xx, an answer within :data:`ANSWER_S`, the process
alive and its resident memory within :data:`RSS_MB` of where it started, and no secret, no
control character and no traceback in any line it wrote to its log; at the end the same model
still serves. Secrets are planted in the forms the redaction knows (SAS query string,
AccountKey, SharedAccessKey, user:password in a URL), in every place a client controls.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_run.processes import free_port
from tests.detector.http import jpeg
from tests.detector.models import ROWS, sample_manifest, write_package, yolov8_model
from tests.detector.running import twin_text
from tests.support.polling import wait_until

ANSWER_S = 10.0
RSS_MB = 300
BODY_MB = 1
MARK = "FUZZSECRET"
SECRETS = [f"https://acct.blob.core.windows.net/c/m.zip?sv=2021&sig={MARK}",
           f"AccountKey={MARK}", f"SharedAccessKey={MARK}", f"http://user:{MARK}@host/x"]
ROUTES = ["/score", "/image", "/image/nostore", "/4f1c/detect/iterations/It1/image",
          "/4f1c/detect/iterations/It1/image/nostore", "/4f1c/image",
          "/customvision/v3.1/prediction/4f1c/detect/iterations/It1/image",
          "/customvision/v3.1/prediction/4f1c/detect/iterations/It1/url"]
JPEG = jpeg(320, 240)


class Target:
    """The detector module under fuzz, its log, and what each example checks afterwards."""

    def __init__(self, root: Path) -> None:
        pkg = write_package(root / "graffiti-sample-1.0.0.zip", yolov8_model(ROWS, 2),
                            ["graffiti", "person"], sample_manifest(320, 320))
        twin = root / "detector.yaml"
        # A header may claim up to max_pixels (a decode buffer of 3 bytes each, and a copy
        # or two): 4 M pixels keeps that well inside RSS_MB, so the bound catches the rest.
        twin.write_text(twin_text(
            server={"max_body_mb": BODY_MB, "idle_timeout_s": 5, "body_timeout_s": 5,
                    "max_concurrent": 2, "max_pixels": 4_000_000},
            inference={"cache_dir": str(root / "cache")}))
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IOTEDGE_", "GRAFFITI_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector_module", "--config", str(twin), "--port",
             str(self.port), "--model", str(pkg), "--data-dir", str(root / "data")],
            env=env, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self.seen = 0

        def ready() -> bool:
            try:
                return self.request("GET", "/readyz", None, {})[0] == 200
            except OSError:
                return False
        assert wait_until(ready, 60), "\n".join(self.lines[-20:])
        self.rss = self.rss_mb()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._reader.join(10)

    def request(self, method: str, path: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, bytes]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_S)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            if body is not None and "Content-Length" not in headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            answer = (response.status, response.read())
        except (ConnectionResetError, BrokenPipeError):
            answer = (0, b"")  # refused mid-body (413 at the limit): the next check tells
        finally:
            conn.close()
        assert time.monotonic() - started < ANSWER_S
        return answer

    def raw(self, data: bytes) -> bytes:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_S) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                answer = b""
        assert time.monotonic() - started < ANSWER_S
        return answer

    def check(self, status: int, body: bytes) -> None:
        """The example's answer and the module afterwards."""
        assert status < 500, body[:300]
        if status >= 400 and not self._parser_refusal(status, body):
            doc = json.loads(body)
            # The Custom Vision routes add Custom Vision's error code.
            assert set(doc) in ({"error", "message"}, {"error", "code", "message"})
            assert doc["message"]
        assert MARK not in body.decode("utf-8", "replace")
        self.healthy()

    def _parser_refusal(self, status: int, body: bytes) -> bool:
        """aiohttp's own plain-text 400 for a request that is not valid HTTP (a control
        character in a header, say): it never reaches a handler."""
        return status == 400 and not body.startswith(b"{")

    def healthy(self) -> None:
        assert self.proc.poll() is None, "\n".join(self.lines[-20:])
        status, _ = self.request("GET", "/healthz", None, {})
        assert status == 200
        assert self.rss_mb() - self.rss < RSS_MB
        for line in self.lines[self.seen:]:
            assert MARK not in line, line
            assert line.isprintable(), line
            assert not line.startswith(("Traceback", "  File ")), line
        self.seen = len(self.lines)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    running = Target(tmp_path_factory.mktemp("fuzz-http"))
    yield running
    running.stop()


# -- strategies ------------------------------------------------------------------------------

texts = st.text(max_size=40) | st.sampled_from(SECRETS) | st.sampled_from(
    ["..", ".", "/etc/passwd", "\r\nX-Forged: 1", "\x1b[31m", "\x00", "%", "%zz", "a" * 300,
     "9999-12-31T23:59:59-01:00", "1e308", "nan", "-1", "0001-01-01T00:00:00+14:00"])


@st.composite
def mutated_jpeg(draw: st.DrawFn) -> bytes:
    data = bytearray(JPEG)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.none() | st.integers(0, len(data)))
    tail = draw(st.binary(max_size=64))
    return bytes(data[:cut]) + tail


prefixes = st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF89a", b""])
bodies = (st.binary(max_size=2000) | mutated_jpeg() | st.just(JPEG)
          | st.tuples(prefixes, st.binary(max_size=200)).map(lambda t: t[0] + t[1])
          | st.integers(BODY_MB * 1024 * 1024 + 1, 3 * 1024 * 1024).map(
              lambda n: b"\xff\xd8\xff" + bytes(n)))
content_types = st.sampled_from([
    "image/jpeg", "image/png", "image/bmp", "application/octet-stream", "text/plain",
    "multipart/form-data", "multipart/form-data; boundary=", "image/", "", "*/*",
    'multipart/form-data; boundary="' + "b" * 80 + '"', "application/json"]) | texts
encodings = st.none() | st.sampled_from(["gzip", "deflate", "br", "identity", "zstd", "",
                                         "gzip, gzip"]) | texts


def header_safe(value: str) -> str:
    """What http.client lets through as a header value (no CR, LF or NUL; latin-1)."""
    return "".join(c for c in value if c not in "\r\n\x00" and ord(c) < 256)


@given(path=st.sampled_from(ROUTES), body=bodies, ctype=content_types, encoding=encodings)
def test_random_bodies_content_types_and_encodings(target: Target, path: str, body: bytes,
                                                   ctype: str, encoding: str | None) -> None:
    headers = {"Content-Type": header_safe(ctype)}
    if encoding is not None:
        headers["Content-Encoding"] = header_safe(encoding)
    status, answer = target.request("POST", path, body, headers)
    if status == 0:
        target.healthy()
        return
    target.check(status, answer)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(st.text("abcXYZ0123456789-_'()+,./:=? ", min_size=1, max_size=70))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["imageData", "other", "", "imageData\"x"]) | texts)
        content = draw(st.just(JPEG) | st.binary(max_size=300) | mutated_jpeg())
        disposition = draw(st.sampled_from([
            f'form-data; name="{name}"', f"form-data; name={name}",
            f'form-data; name="{name}"; filename="{name}.jpg"', "form-data", "", name]))
        extra = draw(st.sampled_from(["", "Content-Type: image/jpeg\r\n",
                                      "Content-Transfer-Encoding: base64\r\n"]))
        head = f"Content-Disposition: {disposition}\r\n{extra}" if disposition else extra
        parts.append(f"--{boundary}\r\n{head}\r\n".encode("utf-8", "replace") + content
                     + b"\r\n")
    body = draw(st.binary(max_size=40)) + b"".join(parts)
    if draw(st.booleans()):
        body += f"--{boundary}--\r\n".encode()
    body += draw(st.binary(max_size=40))
    quoted = draw(st.booleans())
    ctype = f'multipart/form-data; boundary="{boundary}"' if quoted else (
        f"multipart/form-data; boundary={boundary}")
    return body, header_safe(ctype)


@given(path=st.sampled_from(ROUTES), multipart=multipart_bodies())
def test_random_multipart_bodies(target: Target, path: str,
                                 multipart: tuple[bytes, str]) -> None:
    body, ctype = multipart
    status, answer = target.request("POST", path, body, {"Content-Type": ctype})
    target.check(status, answer)


@given(path=st.sampled_from(ROUTES),
       query=st.dictionaries(st.sampled_from(["camera_id", "ts"]) | texts, texts, max_size=4),
       raw_tail=st.sampled_from(["", "&%", "&%zz=1", "&camera_id", "&ts=&ts=1", "&=x"]))
def test_random_query_strings(target: Target, path: str, query: dict[str, str],
                              raw_tail: str) -> None:
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    status, answer = target.request("POST", f"{path}?{encoded}{raw_tail}", JPEG,
                                    {"Content-Type": "image/jpeg"})
    target.check(status, answer)


@given(project=texts, iteration=texts)
def test_random_custom_vision_projects_and_iterations(target: Target, project: str,
                                                      iteration: str) -> None:
    path = (f"/{urllib.parse.quote(project, safe='')}/detect/iterations/"
            f"{urllib.parse.quote(iteration, safe='')}/image")
    status, answer = target.request("POST", path, JPEG, {"Content-Type": "image/jpeg"})
    target.check(status, answer)


header_names = st.sampled_from(["Content-Type", "Content-Length", "Transfer-Encoding",
                                "Content-Encoding", "Host", "Connection", "Expect",
                                "X-Forwarded-For", "Authorization"]) | st.text(
    "abcdefghijklmnopqrstuvwxyz-_:. \t\x00\x7f", min_size=1, max_size=20)
header_values = texts | st.sampled_from(["chunked", "gzip, chunked", "-1", "1e3", "0x10",
                                         "100-continue", "99999999999999999999"])


@given(method=st.sampled_from(["POST", "GET", "PUT", "G\x00ET", "POST /score"]),
       target_path=st.sampled_from(ROUTES + ["/healthz", "/model", "*", "//", "/%00",
                                             "http://evil/score"]),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1\x00", ""]),
       headers=st.lists(st.tuples(header_names, header_values), max_size=6),
       body=st.binary(max_size=200) | st.just(JPEG))
def test_random_raw_requests(target: Target, method: str, target_path: str, version: str,
                             headers: list[tuple[str, str]], body: bytes) -> None:
    lines = [f"{method} {target_path} {version}"] + [f"{n}: {v}" for n, v in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace") + body
    answer = target.raw(data)
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/"), answer[:200]
        assert status_line[9:10] != b"5", answer[:300]
        assert MARK.encode() not in answer or MARK.encode() in data
    target.healthy()


def test_the_last_good_model_still_serves(target: Target) -> None:
    status, body = target.request("GET", "/model", None, {})
    model = json.loads(body)
    assert (status, model["name"], model["version"]) == (200, "graffiti-sample", "1.0.0")
    status, body = target.request("POST", "/score", JPEG, {"Content-Type": "image/jpeg"})
    assert status == 200 and json.loads(body)["detections"]
    target.healthy()
    assert any("api.malformed_request" in line for line in target.lines)
