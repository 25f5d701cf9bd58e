"""The viewer's HTTP API against Azurite, through a real ``python -m viewer`` process."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from contracts.blob_layout import CONTAINER
from tests.support.azurite import start_azurite
from tests.viewer.server import ROOT, ViewerProcess

pytestmark = pytest.mark.integration


def by_event(clip_ids: list[str], event_id: str) -> str:
    return next(c for c in clip_ids if c.endswith("_" + event_id))


def test_video_is_served_with_ranges(viewer: ViewerProcess, clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-a1")
    status, headers, whole = viewer.request("GET", f"/api/video/{clip}")
    assert status == 200 and headers["Accept-Ranges"] == "bytes"
    assert whole[4:8] == b"ftyp" and int(headers["Content-Length"]) == len(whole)
    status, headers, part = viewer.request("GET", f"/api/video/{clip}",
                                           headers={"Range": "bytes=100-1099"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert part == whole[100:1100]
    status, headers, tail = viewer.request("GET", f"/api/video/{clip}",
                                           headers={"Range": "bytes=-500"})
    assert status == 206 and tail == whole[-500:]
    status, headers, body = viewer.request("GET", f"/api/video/{clip}",
                                           headers={"Range": f"bytes={len(whole)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"
    assert json.loads(body)["error"] == "range_not_satisfiable"


@pytest.mark.parametrize("path", [
    "/api/clips/..%2f..%2fetc/passwd", "/api/clips/%2e%2e/%2e%2e/x",
    "/api/video/train-0001/../train-0002/cam-01/2026/11/21/070000_ev-b2",
    "/api/video/train-0001%5ccam-01/2026/11/21/090000_ev-a2", "/api/thumb//etc/passwd",
    "/api/clips/README.txt", "/api/video/train-0001/cam-01/2026/11/21/090000_ev-a2.mp4/x",
    "/api/clips/train-0001/cam-01/2026/11/21", "/api/clips?train=..",
    "/api/clips?carriage=..", "/api/clips?carriage=4021%2F..%2Fx",
])
def test_path_tricks_are_refused(viewer: ViewerProcess, path: str) -> None:
    status, body = viewer.json("GET", path)
    assert status == 400, (path, body)
    assert body["error"] == "bad_request" and body["message"]


def test_unknown_clip_is_404_json(viewer: ViewerProcess) -> None:
    for path in ("/api/clips/train-0001/cam-01/2026/11/21/090000_nope",
                 "/api/video/train-9999/cam-01/2026/11/21/090000_ev-a2",
                 "/api/clips/train-0001/cam-01/2026/11/21/235900_ev-partial"):
        status, body = viewer.json("GET", path)
        assert status == 404 and body["error"] == "not_found", path
    status, body = viewer.json("PUT", "/api/reviews/train-0001/cam-01/2026/11/21/090000_nope",
                               {"state": "confirmed", "note": "", "etag": None})
    assert status == 404


def test_list_pages_and_filters(viewer: ViewerProcess, clip_ids: list[str]) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        status, page = viewer.json("GET", f"/api/clips?limit=3&cursor={cursor}")
        assert status == 200 and len(page["clips"]) <= 3
        seen += [c["id"] for c in page["clips"]]
        if not page["next"]:
            break
        cursor = page["next"]
    assert sorted(seen) == sorted(clip_ids) and len(seen) == len(set(seen))
    status, page = viewer.json("GET", "/api/clips?train=train-0002&min_score=0.75")
    assert [c["event_id"] for c in page["clips"]] == ["ev-b3", "ev-b1"]
    status, page = viewer.json("GET", "/api/clips?from=2026-11-19&to=2026-11-20")
    assert [c["event_id"] for c in page["clips"]] == ["ev-a1", "ev-b1"]
    status, body = viewer.json("GET", "/api/clips?cursor=bm90LWEtY3Vyc29y")
    assert status == 400


def test_the_list_names_and_filters_the_carriage(viewer: ViewerProcess,
                                                 clip_ids: list[str]) -> None:
    status, page = viewer.json("GET", "/api/clips?carriage=4021")
    assert status == 200
    assert [c["event_id"] for c in page["clips"]] == ["ev-a3", "ev-a2", "ev-a1"]
    assert {(c["carriage"], c["position"]) for c in page["clips"]} == {("4021", "left")}
    status, page = viewer.json("GET", "/api/clips?train=train-0002")
    places = {c["event_id"]: (c["carriage"], c["position"]) for c in page["clips"]}
    # A clip from before sidecar schema 3 has no carriage: still listed, readable, playable.
    assert places == {"ev-b3": ("7001", "cab"), "ev-b2": (None, None), "ev-b1": (None, None)}
    assert not any(c["unreadable"] for c in page["clips"])
    old = by_event(clip_ids, "ev-b2")
    status, detail = viewer.json("GET", f"/api/clips/{old}")
    assert status == 200 and detail["sidecar_problem"] is None
    assert detail["sidecar"]["schema_version"] == 2 and detail["sidecar"]["carriage"] is None
    status, _, video = viewer.request("GET", f"/api/video/{old}")
    assert status == 200 and video[4:8] == b"ftyp"


def test_review_conflict_is_409_and_bulk_marks(viewer: ViewerProcess,
                                               clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-a2")
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    assert status == 200 and detail["review"] is None
    assert detail["sidecar"]["detections"] and detail["sidecar"]["video"]["width"] == 640
    first = {"state": "confirmed", "note": "operator A", "etag": detail["review_etag"]}
    second = {"state": "false_positive", "note": "operator B", "etag": detail["review_etag"]}
    status, saved = viewer.json("PUT", f"/api/reviews/{clip}", first)
    assert status == 200 and saved["review"]["state"] == "confirmed"
    status, body = viewer.json("PUT", f"/api/reviews/{clip}", second)
    assert status == 409 and body["error"] == "conflict"
    assert "changed by someone else" in body["message"]
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    assert detail["review"]["note"] == "operator A"  # not silently overwritten
    status, body = viewer.json("PUT", f"/api/reviews/{clip}",
                               {**second, "etag": detail["review_etag"]})
    assert status == 200 and body["review"]["state"] == "false_positive"
    status, body = viewer.json("PUT", f"/api/reviews/{clip}", {"state": "maybe", "etag": None})
    assert status == 400

    targets = [by_event(clip_ids, "ev-b2"), by_event(clip_ids, "ev-c1")]
    status, body = viewer.json("POST", "/api/reviews", {
        "clips": [*targets, "train-0001/cam-01/2026/11/21/090000_nope", "../x"],
        "state": "cleaned", "note": "depot wash 21 Nov"})
    assert status == 200 and body["ok"] == 2 and body["failed"] == 2
    assert [r["status"] for r in body["results"]] == [200, 200, 404, 400]
    status, page = viewer.json("GET", "/api/clips?state=cleaned")
    assert sorted(c["id"] for c in page["clips"]) == sorted(targets)
    assert all(c["review_etag"] for c in page["clips"])


def test_export_download_is_a_training_set(viewer: ViewerProcess, clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-a4")
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    if detail["review"] is None:
        viewer.json("PUT", f"/api/reviews/{clip}", {"state": "confirmed", "etag": None})
    status, headers, data = viewer.request("GET", "/api/export.zip?state=confirmed")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        lines = [json.loads(x) for x in archive.read("train.jsonl").decode().splitlines()]
    assert lines and all(line["image_url"] in names for line in lines)
    assert all(line["label"] for line in lines)  # confirmed only: every frame labelled
    status, body = viewer.json("GET", "/api/export.zip?state=unreviewed")
    assert status == 400


def test_token_is_required_when_configured(azurite, clip_ids: list[str],
                                           tmp_path: Path) -> None:
    token = "s3cret-token-for-the-depot"
    server = ViewerProcess(tmp_path / "token.log", azurite.connection_string,
                           env={"GRAFFITI_VIEWER_TOKEN": token})
    try:
        for path in ("/", "/api/clips", f"/api/video/{clip_ids[0]}", "/static/app.js"):
            status, _, body = server.request("GET", path)
            assert status == 401 and json.loads(body)["error"] == "unauthorized", path
        status, _, _ = server.request("GET", "/api/clips",
                                      headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
        assert status == 401
        status, _, body = server.request("GET", "/api/clips",
                                         headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and json.loads(body)["clips"]
        status, headers, _ = server.request("GET", f"/?token={token}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
        session = cookie.split(";", 1)[0]
        status, _, _ = server.request("GET", f"/api/video/{clip_ids[0]}",
                                      headers={"Cookie": session, "Range": "bytes=0-1"})
        assert status == 206
    finally:
        server.stop()
    assert token not in server.log()


def test_open_bind_without_token_is_refused(azurite, tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "viewer", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin",
             "GRAFFITI_VIEWER_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 2
    assert "without an access token" in result.stderr
    assert "AccountKey" not in result.stderr + result.stdout


def test_storage_down_is_503_naming_the_endpoint(tmp_path: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    azurite = start_azurite(tmp_path)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(CONTAINER)
    for suffix in (".mp4", ".json"):
        container.upload_blob(f"t1/c1/2026/11/21/100000_e1{suffix}", b"{}",
                              metadata={"max_score": "0.9"})
    service.close()
    server = ViewerProcess(tmp_path / "down.log", azurite.connection_string)
    try:
        status, page = server.json("GET", "/api/clips")
        assert status == 200 and len(page["clips"]) == 1
        azurite.stop()
        for path in ("/api/clips", "/api/health", "/api/video/t1/c1/2026/11/21/100000_e1",
                     "/api/clips/t1/c1/2026/11/21/100000_e1"):
            status, body = server.json("GET", path)
            assert status == 503, (path, body)
            assert body["error"] == "storage_unavailable"
            assert f"127.0.0.1:{azurite.port}" in body["message"]
            assert "AccountKey" not in body["message"] and "Traceback" not in body["message"]
    finally:
        server.stop()
        azurite.stop()
    assert "Traceback" not in server.log()


def _review_state(viewer: ViewerProcess, clip: str) -> Any:
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    assert status == 200
    return detail["review"], detail["review_etag"]


def test_cross_site_writes_are_refused(viewer: ViewerProcess, clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-b3")
    before = _review_state(viewer, clip)
    body = json.dumps({"clips": [clip], "state": "cleaned"}).encode()
    port = viewer.port
    attempts = [
        # What a no-cors fetch or a form from another page can send: no JSON content type.
        ({"Content-Type": "text/plain;charset=UTF-8"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
        # JSON, but the browser says it comes from elsewhere (another port is same-site).
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site",
          "Origin": f"http://127.0.0.1:{port}"}, 403),
    ]
    for headers, expected in attempts:
        status, _, answer = viewer.raw("POST", "/api/reviews", body, headers)
        assert status == expected, (headers, answer)
        assert json.loads(answer)["error"] in ("cross_site", "unsupported_media_type")
    assert _review_state(viewer, clip) == before
    # The page itself (same origin, JSON) still writes.
    status, _, answer = viewer.raw("POST", "/api/reviews", body, {
        "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}",
        "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and json.loads(answer)["ok"] == 1


def test_a_foreign_host_name_is_refused_on_loopback(viewer: ViewerProcess) -> None:
    for host in ("evil.example", f"evil.example:{viewer.port}", "127.0.0.1.nip.io"):
        status, _, answer = viewer.raw("GET", "/api/clips", None, {"Host": host})
        assert status == 421 and json.loads(answer)["error"] == "misdirected", host
    for host in (f"localhost:{viewer.port}", f"127.0.0.1:{viewer.port}", "[::1]"):
        status, _, _ = viewer.raw("GET", "/api/health", None, {"Host": host})
        assert status == 200, host


def test_odd_bodies_and_etags_get_a_4xx_json(viewer: ViewerProcess,
                                             clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-b3")
    json_type = {"Content-Type": "application/json"}
    for body in (b"[" * 50_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b"\xff\xfe{}",
                 b"NaN", b'{"state": "confirmed", "etag": "\\"0x1\\"\\r\\nX: y"}',
                 b'{"state": "confirmed", "etag": "' + b"x" * 500 + b'"}',
                 b'{"state": "confirmed", "etag": 5}'):
        for method, path in (("PUT", f"/api/reviews/{clip}"), ("POST", "/api/reviews")):
            status, _, answer = viewer.raw(method, path, body, json_type)
            assert 400 <= status < 500, (method, body[:30], answer[:200])
            assert json.loads(answer)["error"]
    status, _, answer = viewer.raw("POST", "/api/reviews", json.dumps(
        {"clips": [{"id": clip, "etag": "\u0007bell"}], "state": "confirmed"}).encode(),
        json_type)
    assert status == 200 and json.loads(answer)["results"][0]["status"] == 400


def test_an_interrupted_clip_says_so(viewer: ViewerProcess, clip_ids: list[str]) -> None:
    clip = by_event(clip_ids, "ev-c2")
    status, page = viewer.json("GET", "/api/clips?train=train-0003")
    summary = next(c for c in page["clips"] if c["id"] == clip)
    assert summary["interrupted"] is True and summary["unreadable"] is False
    status, detail = viewer.json("GET", f"/api/clips/{clip}")
    assert detail["sidecar"]["interrupted"] is True
    assert detail["sidecar"]["interruption"]["reason"] == "module restarted"
    assert detail["sidecar"]["gaps"] == [{"at_s": 1.6, "missing_s": 2.4}]
    assert detail["sidecar_problem"] is None
