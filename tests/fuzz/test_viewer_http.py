"""Fuzzing the viewer: hostile requests against a real ``python -m viewer`` on Azurite, whose
container also holds hostile blobs (metadata and sidecars nobody should trust).

For every request: no 5xx, an answer within :data:`ANSWER_S`, valid JSON (no ``NaN``) from
the API, and the process still alive. At the end the viewer's whole log is checked: one
well-formed line per event, no traceback, no control character, no secret.
``pytest tests/fuzz --hypothesis-profile=thorough`` searches longer.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from hypothesis import given
from hypothesis import strategies as st

from contracts.blob_layout import API_VERSION, blob_metadata, encode_metadata
from samples.clips import at, video_bytes, write_clip
from tests.support.azurite import DEV_KEY, Azurite
from tests.viewer.server import ViewerProcess

pytestmark = pytest.mark.integration

CONTAINER = "fuzz-clips"
ANSWER_S = 10.0
GOOD = "train-0001/cam-01/2026/11/21/221507_ev-good"
LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|"
                  r"CRITICAL) viewer [a-z_]+(\.[a-z_]+)+( \S.*)?$")


def _put_clip(container: ContainerClient, stem: str, meta: dict[str, str],
              sidecar: bytes, *, name: str | None = None, review: bytes | None = None,
              review_meta: dict[str, str] | None = None) -> str:
    """A clip's video, thumbnail and sidecar (and review) with the metadata given as is."""
    clip = name or f"train-0001/cam-01/2026/11/21/230000_{stem}"
    for suffix, body in ((".mp4", video_bytes(2000)), (".jpg", b"\xff\xd8\xff"),
                         (".json", sidecar)):
        container.upload_blob(clip + suffix, body, metadata=meta, overwrite=True)
    if review is not None:
        container.upload_blob(clip + ".review.json", review, metadata=review_meta or {},
                              overwrite=True)
    return clip


def _hostile_store(container: ContainerClient, folder: Path) -> list[str]:
    """A good clip and a dozen that break the rules; the ids of those the layout accepts."""
    good = write_clip(folder, "ev-good", video_bytes(2000), start=at(0))
    sidecar = (folder / "ev-good.json").read_bytes()
    meta = blob_metadata(good)
    for suffix, path in ((".mp4", "ev-good.mp4"), (".jpg", "ev-good.jpg"),
                         (".json", "ev-good.json")):
        container.upload_blob(GOOD + suffix, (folder / path).read_bytes(), metadata=meta,
                              overwrite=True)
    doc = json.loads(sidecar)
    confirmed = encode_metadata({"review_state": "confirmed"})
    return [GOOD,
            _put_clip(container, "nan", {**meta, "max_score": "nan"}, sidecar),
            _put_clip(container, "empty", {}, sidecar, review=b"{}", review_meta=confirmed),
            _put_clip(container, "mixed", {**meta, "start_utc": "2026-11-21T23:00:00",
                                           "end_utc": "2026-11-21T23:00:09+00:00"}, sidecar),
            _put_clip(container, "forged", encode_metadata({
                **meta, "event_id": "x\n2026-01-01T00:00:00.000Z ERROR viewer forged.line",
                "labels": "a,\x1b[31mred,\r\nb", "model_version": "../../etc",
                "duration_s": "1e400"}), sidecar),
            _put_clip(container, "deep", meta, b"[" * 200_000, review=b"[" * 100_000,
                      review_meta=confirmed),
            _put_clip(container, "nansidecar", meta, json.dumps(
                {**doc, "max_score": float("nan"), "extra": [float("inf")]}).encode(),
                review=b'{"state": "confirmed"}', review_meta=confirmed),
            _put_clip(container, "extras", meta, json.dumps(
                {**doc, "extra": {"deep": [float("nan"), {"x": float("-inf")}]}}).encode()),
            _put_clip(container, "huge", meta, b" " * (5 * 1024 * 1024) + sidecar),
            _put_clip(container, "notjson", meta, b"\xff\xfe not json",
                      review=b"\x00" * 10, review_meta=encode_metadata(
                          {"review_state": "confirmed\x00"})),
            _put_clip(container, "v9", meta, json.dumps({**doc, "schema_version": 9}).encode()),
            _put_clip(container, "odd", meta, sidecar,
                      name="train-0001/cam-01/2026/13/99/250000_odd")]


def _outside_the_layout(container: ContainerClient, meta: dict[str, str]) -> None:
    """Blobs whose names break the identifier rule: never listed, never a clip."""
    for name in ("t" * 70 + "/c/2026/11/21/100000_x", "tr ain/c/2026/11/21/100000_x",
                 "tr\u00e4in/c/2026/11/21/100000_x", "t/c/2026/11/21/100000_-x"):
        _put_clip(container, "x", meta, b"{}", name=name)


@pytest.fixture(scope="module")
def hostile(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[ViewerProcess, list[str]]]:
    folder = tmp_path_factory.mktemp("fuzz-viewer")
    service = BlobServiceClient.from_connection_string(azurite.connection_string,
                                                       api_version=API_VERSION)
    container = service.get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    ids = sorted(_hostile_store(container, folder))
    _outside_the_layout(container, {"max_score": "0.5"})
    service.close()
    server = ViewerProcess(folder / "viewer.log", azurite.connection_string,
                           "--container", CONTAINER)
    yield server, ids
    server.stop()


def raw(server: ViewerProcess, request: bytes,
        patience_s: float | None = None) -> tuple[int | None, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body), status None if the server closed
    without an answer. With ``patience_s``, a server still waiting for more of a request
    (a Content-Length never sent) after that long is told that nothing more comes (the
    write side is closed) and must then answer or close within the bound."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_S) as sock:
        sock.sendall(request)
        if patience_s is not None:
            sock.settimeout(patience_s)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                assert patience_s is not None, "answer took too long"
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(ANSWER_S)
                patience_s = None
                continue
            if not chunk:
                break
            data += chunk
            assert time.monotonic() - started < ANSWER_S, "answer took too long"
    assert time.monotonic() - started < ANSWER_S, "answer took too long"
    assert server.process.poll() is None, "the viewer died"
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return int(status_line.split(" ", 2)[1]), headers, body


def _no_nan(text: str) -> None:
    raise ValueError(f"{text} in a JSON answer")


def request(server: ViewerProcess, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A well-formed HTTP request; asserts the answer is no 5xx and its JSON is JSON."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    status, answer_headers, answer = raw(
        server, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    assert status is not None and status < 500, (method, path, status, answer[:300])
    if answer_headers.get("content-type", "").startswith("application/json"):
        json.loads(answer, parse_constant=_no_nan)
    return status, answer


def test_the_list_and_every_clip_work_despite_the_hostile_blobs(
        hostile: tuple[ViewerProcess, list[str]]) -> None:
    server, ids = hostile
    shown: dict[str, Any] = {}
    cursor = ""
    for _ in range(20):
        status, body = request(server, "GET", f"/api/clips?limit=3&cursor={cursor}")
        page = json.loads(body)
        shown |= {c["id"]: c for c in page["clips"]}
        if not page["next"]:
            break
        cursor = page["next"]
    assert sorted(shown) == ids
    assert not shown[GOOD]["unreadable"] and shown[GOOD]["max_score"] == 0.9
    for stem in ("nan", "empty", "mixed", "forged"):
        clip = next(c for c in shown.values() if c["id"].endswith("_" + stem))
        assert clip["unreadable"] and clip["problems"], clip
    for clip in ids:
        status, body = request(server, "GET", f"/api/clips/{clip}")
        detail = json.loads(body)
        assert status == 200 and (detail["sidecar"] is None) == (detail["sidecar_problem"]
                                                                 is not None), clip
    status, _ = request(server, "GET", "/api/export.zip?state=confirmed")
    assert status == 200


QUERY_KEYS = st.sampled_from(["train", "camera", "from", "to", "min_score", "state", "limit",
                              "cursor", "token", "url_prefix"]) | st.text(max_size=10)
VALUES = st.text(max_size=40) | st.sampled_from([
    "nan", "inf", "-1", "1e309", "0001-01-01", "9999-12-31", "..", "../x", "%00", "a/b",
    "eyJkYXkiOiAiMjAyNi8xMS8yMSIsICJhZnRlciI6ICIuLiJ9", "[" * 50])


@given(st.dictionaries(QUERY_KEYS, VALUES, max_size=6),
       st.sampled_from(["/api/clips", "/api/export.zip", "/api/health", "/"]))
def test_random_query_strings(hostile: tuple[ViewerProcess, list[str]],
                              query: dict[str, str], path: str) -> None:
    request(hostile[0], "GET", f"{path}?{urlencode(query)}")


@given(st.sampled_from(["/api/clips/", "/api/video/", "/api/thumb/", "/static/", "/api/"]),
       st.text(max_size=120) | st.sampled_from([GOOD, GOOD + "/..", "train-0001/cam-01/2026"
                                                "/13/99/250000_odd", "t" * 70 + "/c/2026/11/"
                                                "21/100000_x"]),
       st.sampled_from([{}, {"Range": "bytes=0-10"}, {"Range": "bytes=-99999999999999"},
                        {"Range": "bytes=5-1"}, {"Range": "items=0-1"}]))
def test_random_paths(hostile: tuple[ViewerProcess, list[str]], base: str, rest: str,
                      headers: dict[str, str]) -> None:
    request(hostile[0], "GET", base + quote(rest, safe="/"), headers=headers)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
REVIEW = st.fixed_dictionaries({}, optional={
    "state": st.sampled_from(["confirmed", "false_positive", "cleaned"]) | JSON,
    "note": st.text(max_size=50) | JSON, "etag": st.none() | st.text(max_size=30) | JSON,
    "clips": st.lists(st.sampled_from([GOOD, "../x"]) | JSON, max_size=4) | JSON})


@given(st.sampled_from(["PUT", "POST", "DELETE", "PATCH"]),
       st.sampled_from([f"/api/reviews/{GOOD}", "/api/reviews",
                        "/api/reviews/train-0001/cam-01/2026/11/21/230000_deep",
                        "/api/clips"]),
       REVIEW | JSON)
def test_random_json_bodies(hostile: tuple[ViewerProcess, list[str]], method: str, path: str,
                            body: Any) -> None:
    request(hostile[0], method, path, json.dumps(body).encode(),
            {"Content-Type": "application/json"})


HEADER_NAMES = st.sampled_from([
    "Content-Type", "Origin", "Sec-Fetch-Site", "Host", "Authorization", "Cookie", "Range",
    "Transfer-Encoding", "Content-Length", "Content-Encoding", "Expect", "X-Forwarded-For"]) \
    | st.text(st.characters(codec="ascii"), max_size=20)
HEADER_VALUES = st.binary(max_size=60) | st.sampled_from([
    b"chunked", b"gzip", b"application/json", b"cross-site", b"evil.example", b"1e999",
    b"100-continue", b"x" * 9000, b"a\r\nX-Injected: 1", b"\x00\x1b[31m"])


@given(st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS", b"HEAD", b"G\x00T", b"BREW"]),
       st.binary(max_size=80) | st.sampled_from([b"/api/clips", b"/api/reviews", b"*",
                                                b"http://evil/api/clips", b"/\r\n/x"]),
       st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
       st.binary(max_size=200))
def test_random_raw_requests(hostile: tuple[ViewerProcess, list[str]], method: bytes,
                             target: bytes, headers: list[tuple[str, bytes]],
                             body: bytes) -> None:
    server = hostile[0]
    head = [method + b" " + target + b" HTTP/1.1", f"Host: 127.0.0.1:{server.port}".encode()]
    head += [name.encode() + b": " + value for name, value in headers]
    status, _, answer = raw(server, b"\r\n".join(head) + b"\r\n\r\n" + body, 1.0)
    assert status is None or status < 500, (status, answer[:300])


def test_zz_the_log_has_one_clean_line_per_event(hostile: tuple[ViewerProcess, list[str]],
                                                  azurite: Azurite) -> None:
    """Runs last in this module: everything above has written its lines."""
    server = hostile[0]
    forged = b"GET /api/clips HTTP/1.1\r\nX-Evil: a\x00\r\n2026-01-01T00:00:00.000Z ERROR x\r\n\r\n"
    assert raw(server, forged, 1.0)[0] == 400
    assert server.process.poll() is None
    text = server.log()
    assert "http.bad_request" in text  # that request reached the log, as one escaped line
    for line in text.splitlines():
        assert LINE.match(line) and line.isprintable(), line[:300]
    for secret in (DEV_KEY, DEV_KEY[:20], "AccountKey=" + DEV_KEY[:5]):
        assert secret not in text
