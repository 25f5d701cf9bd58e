"""Model updates against a running detector and a local package server."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.detector.running import Running
from tests.detector.updates.conftest import md5_b64, package_bytes, package_file
from tests.detector.updates.server import PackageServer
from tests.support.polling import wait_until

Start = Callable[..., Running]


def model_state(running: Running) -> dict:
    try:
        return running.reported().get("model", {})
    except (OSError, ValueError):
        return {}


def wait_status(running: Running, status: str, version: str, timeout: float = 30) -> dict:
    def done() -> bool:
        state = model_state(running)
        return state.get("status") in (status, "failed") and version in (
            state.get("version"), state.get("desiredVersion"))
    assert wait_until(done, timeout), model_state(running)
    state = model_state(running)
    assert state["status"] == status, state
    return state


def serving(running: Running) -> str:
    return running.get("/model").json["version"]


def model_messages(running: Running) -> list[dict]:
    path = running.data_dir / "outputs" / "model.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["body"] for line in path.read_text().splitlines()]


def desired(url: str, data: bytes, version: str) -> dict:
    return {"version": version, "url": url, "content_md5": md5_b64(data)}


def leftovers(root: Path) -> list[Path]:
    folders = [root / "repo" / ".downloads", root / "repo" / ".staging"]
    return [p for f in folders if f.exists() for p in f.iterdir()]


def test_happy_path_downloads_verifies_and_swaps(detector: Start, server: PackageServer,
                                                 tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    data = package_bytes("2.0.0")
    url = server.add("/models/graffiti-test-2.0.0.zip", data)
    det = detector()
    assert det.service.wait_ready(20) and serving(det) == "1.0.0"
    det.edit("model", **desired(url, data, "2.0.0"))
    state = wait_status(det, "active", "2.0.0")
    assert state["name"] == "graffiti-test" and state["format"] == "yolov8"
    assert state["activatedAt"] and state["providers"]
    assert serving(det) == "2.0.0"
    assert det.post("/score").json["model"]["version"] == "2.0.0"
    assert [m["version"] for m in model_messages(det)] == ["2.0.0"]
    active = json.loads((tmp_path / "repo" / "active.json").read_text())
    assert active["version"] == "2.0.0"
    assert (tmp_path / "repo" / "graffiti-test" / "2.0.0" / "model.onnx").is_file()
    assert leftovers(tmp_path) == []
    # The SAS never appears in the log, the reported properties or the partial metadata.
    assert "SECRETSIG" not in caplog.text and "SECRETSIG" not in json.dumps(det.reported())
    assert "model.download_started" in caplog.text


def test_cut_mid_download_resumes_refetching_at_most_one_chunk(
        detector: Start, server: PackageServer) -> None:
    data = package_bytes("2.0.0", pad=600_000)
    url = server.add("/m.zip", data)
    server.cut_after, server.cuts_left = 250_000, 2
    det = detector(desired=desired(url, data, "2.0.0"))
    wait_status(det, "active", "2.0.0")
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and len(ranges) == 3, ranges
    first = int(ranges[1].removeprefix("bytes=").split("-")[0])
    assert 250_000 - 64 * 1024 <= first <= 250_000
    assert server.sent_total <= len(data) + 2 * 64 * 1024


def test_restart_mid_download_resumes_from_partial_file(
        detector: Start, server: PackageServer, tmp_path: Path) -> None:
    data = package_bytes("2.0.0", pad=900_000)
    url = server.add("/m.zip", data)
    server.rate = 300_000
    det = detector(desired=desired(url, data, "2.0.0"))
    downloads = tmp_path / "repo" / ".downloads"
    parts = lambda: list(downloads.glob("*.part")) if downloads.exists() else []  # noqa: E731
    assert wait_until(lambda: parts() and parts()[0].stat().st_size > 200_000, 20)
    det.stop()
    have = parts()[0].stat().st_size
    assert len(list(downloads.glob("*.json"))) == 1  # its metadata persists too
    server.rate = None
    server.requests.clear()
    det2 = detector(desired=desired(url, data, "2.0.0"))
    wait_status(det2, "active", "2.0.0")
    start = int(server.requests[0][1].removeprefix("bytes=").split("-")[0])
    assert start >= have
    assert serving(det2) == "2.0.0"


def test_checksum_mismatch_removes_file_and_keeps_old_model(
        detector: Start, server: PackageServer, tmp_path: Path) -> None:
    data = package_bytes("2.0.0")
    url = server.add("/m.zip", data)
    det = detector()
    assert det.service.wait_ready(20)
    det.edit("model", version="2.0.0", url=url, content_md5=md5_b64(b"something else"))
    state = wait_status(det, "failed", "2.0.0")
    assert "MD5 mismatch" in state["error"]
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "repo" / "graffiti-test" / "2.0.0").exists()
    assert det.post("/score").json["model"]["version"] == "1.0.0"


def test_no_checksum_is_refused_unless_allowed(detector: Start, server: PackageServer) -> None:
    data = package_bytes("2.0.0")
    url = server.add("/m.zip", data)
    det = detector(desired={"version": "2.0.0", "url": url})
    assert "no checksum" in wait_status(det, "failed", "2.0.0")["error"]
    assert server.requests == []
    det.edit("model_repository", allow_unverified=True)
    assert wait_until(lambda: model_state(det).get("status") == "active", 20), model_state(det)
    assert serving(det) == "2.0.0"


@pytest.mark.parametrize(("kind", "reason"), [
    ("zip-slip", "'..'"), ("absolute", "absolute path"), ("bomb", "ratio"),
    ("no-labels", "no labels"), ("symlink", "not a regular file"),
])
def test_unsafe_or_incomplete_packages_are_refused(detector: Start, server: PackageServer,
                                                   tmp_path: Path, kind: str,
                                                   reason: str) -> None:
    if kind == "zip-slip":
        data = package_bytes("2.0.0", extra={"../../evil.txt": b"owned"})
    elif kind == "absolute":
        data = package_bytes("2.0.0", extra={"/tmp/evil.txt": b"owned"})
    elif kind == "bomb":
        data = package_bytes("2.0.0", extra={"zeros.bin": bytes(60_000_000)})
    elif kind == "no-labels":
        data = package_bytes("2.0.0", labels=False)
    else:
        data = package_bytes("2.0.0")
        import io
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as zf:
            info = zipfile.ZipInfo("link")
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
        data = buf.getvalue()
    url = server.add("/m.zip", data)
    det = detector(desired=desired(url, data, "2.0.0"))
    state = wait_status(det, "failed", "2.0.0")
    assert reason in state["error"], state
    assert not list(tmp_path.rglob("evil.txt"))
    assert leftovers(tmp_path) == [] and not (tmp_path / "repo" / "graffiti-test").exists()
    assert serving(det) == "1.0.0"


def test_model_that_fails_to_load_leaves_old_serving(detector: Start, server: PackageServer,
                                                     tmp_path: Path) -> None:
    data = package_bytes("2.0.0", model=b"this is not an onnx model")
    url = server.add("/m.zip", data)
    det = detector(desired=desired(url, data, "2.0.0"))
    state = wait_status(det, "failed", "2.0.0")
    assert "failed to load" in state["error"]
    assert serving(det) == "1.0.0"
    assert det.post("/score").status == 200
    assert not (tmp_path / "repo" / "graffiti-test" / "2.0.0").exists()
    assert model_messages(det) == []


def test_second_patch_during_download_wins(detector: Start, server: PackageServer,
                                           tmp_path: Path) -> None:
    slow = package_bytes("2.0.0", pad=2_000_000)
    fast = package_bytes("2.0.1")
    slow_url, fast_url = server.add("/slow.zip", slow), server.add("/fast.zip", fast)
    server.rate, server.slow_paths = 100_000, {"/slow.zip"}
    det = detector(desired=desired(slow_url, slow, "2.0.0"))
    assert wait_until(lambda: (model_state(det).get("progress") or {}).get("bytes", 0) > 0, 20)
    det.edit("model", **desired(fast_url, fast, "2.0.1"))
    wait_status(det, "active", "2.0.1")
    assert serving(det) == "2.0.1"
    assert [m["version"] for m in model_messages(det)] == ["2.0.1"]
    assert wait_until(lambda: leftovers(tmp_path) == [], 5), leftovers(tmp_path)
    assert not (tmp_path / "repo" / "graffiti-test" / "2.0.0").exists()


def test_patch_repeating_active_version_does_nothing(
        detector: Start, server: PackageServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    data = package_bytes("1.0.0")
    url = server.add("/m.zip", data)
    det = detector(desired=desired(url, data, "1.0.0"))
    assert wait_until(lambda: "model.already_active" in caplog.text, 20)
    assert server.requests == [] and model_messages(det) == []
    assert serving(det) == "1.0.0"


def test_offline_boot_loads_active_version_without_network(
        detector: Start, tmp_path: Path) -> None:
    with PackageServer() as srv:
        data = package_bytes("2.0.0")
        url = srv.add("/m.zip", data)
        det = detector(desired=desired(url, data, "2.0.0"))
        wait_status(det, "active", "2.0.0")
        det.stop()
    # The server is gone (no network); the twin still names 2.0.0, no --model given.
    det2 = detector(model=None, desired=desired(url, data, "2.0.0"))
    assert det2.service.wait_ready(20)
    info = det2.get("/model").json
    assert (info["name"], info["version"]) == ("graffiti-test", "2.0.0")
    assert str(tmp_path / "repo") in info["source"]


def test_empty_repository_boots_the_bundled_sample(detector: Start) -> None:
    det = detector(model=None)
    assert det.service.wait_ready(30)
    assert det.get("/model").json["name"] == "graffiti-sample"


def test_rollback_to_kept_version_without_download(detector: Start, server: PackageServer,
                                                   tmp_path: Path) -> None:
    two, three = package_bytes("2.0.0"), package_bytes("3.0.0")
    url2, url3 = server.add("/2.zip", two), server.add("/3.zip", three)
    det = detector(desired=desired(url2, two, "2.0.0"))
    wait_status(det, "active", "2.0.0")
    det.edit("model", **desired(url3, three, "3.0.0"))
    wait_status(det, "active", "3.0.0")
    server.requests.clear()
    # The twin names 2.0.0 by its checksum again; the URL is gone: no download is tried.
    det.edit("model", **desired(url2.replace("/2.zip", "/gone.zip"), two, "2.0.0"))
    wait_status(det, "active", "2.0.0")
    assert serving(det) == "2.0.0"
    assert server.requests == []
    assert [m["version"] for m in model_messages(det)] == ["2.0.0", "3.0.0", "2.0.0"]


def test_keep_versions_prunes_oldest_never_active(detector: Start, server: PackageServer,
                                                  tmp_path: Path) -> None:
    det = detector(keep_versions=2)
    assert det.service.wait_ready(20)
    for version in ("2.0.0", "3.0.0", "4.0.0"):
        data = package_bytes(version)
        det.edit("model", **desired(server.add(f"/{version}.zip", data), data, version))
        wait_status(det, "active", version)
    kept = sorted(p.name for p in (tmp_path / "repo" / "graffiti-test").iterdir())
    assert kept == ["3.0.0", "4.0.0"]


def test_broken_active_version_boots_the_bundled_sample(detector: Start, server: PackageServer,
                                                        tmp_path: Path) -> None:
    data = package_bytes("2.0.0")
    det = detector(desired=desired(server.add("/m.zip", data), data, "2.0.0"))
    wait_status(det, "active", "2.0.0")
    det.stop()
    (tmp_path / "repo" / "graffiti-test" / "2.0.0" / "model.onnx").write_bytes(b"corrupt")
    det2 = detector(model=None)
    assert det2.service.wait_ready(30)
    assert det2.get("/model").json["name"] == "graffiti-sample"


def test_seed_keys_and_file_url(detector: Start, tmp_path: Path) -> None:
    zip_path = tmp_path / "drop" / "graffiti-test-2.0.0.zip"
    data = package_file(zip_path, "2.0.0")
    det = detector(desired={"version": "2.0.0", "DownloadUrl": zip_path.as_uri(),
                            "ContentMD5": md5_b64(data), "FileName": zip_path.name})
    wait_status(det, "active", "2.0.0")
    assert serving(det) == "2.0.0"


def test_verify_and_safe_url_units(tmp_path: Path) -> None:
    import hashlib

    from detector_module.updates.download import safe_url
    from detector_module.updates.verify import VerifyError, verify
    path = tmp_path / "f.zip"
    path.write_bytes(b"abc")
    verify(path, content_md5="kAFQmDzST7DWlj99KOF/cg==", sha256=None)
    verify(path, content_md5=None, sha256=hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(VerifyError, match="sha256 mismatch"):
        verify(path, content_md5="kAFQmDzST7DWlj99KOF/cg==", sha256="0" * 64)
    with pytest.raises(VerifyError, match="no checksum"):
        verify(path, content_md5=None, sha256=None)
    verify(path, content_md5=None, sha256=None, allow_unverified=True)
    assert safe_url("https://a.blob.core.windows.net/c/m.zip?sv=1&sig=S%3D") == \
        "https://a.blob.core.windows.net/c/m.zip"
