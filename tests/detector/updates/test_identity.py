"""A package is its name, version and content: versions are immutable, names never mix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from config.detector import DesiredModel
from detector_module.updates.identity import Content, Installed, is_wanted
from detector_module.updates.repository import Immutable, ModelRepository
from detector_module.updates.verify import digests
from tests.detector.running import Running
from tests.detector.updates.conftest import md5_b64, package_bytes, unpacked
from tests.detector.updates.server import PackageServer
from tests.detector.updates.test_updates import (
    Start,
    model_messages,
    model_state,
    serving,
    wait_status,
)
from tests.support.polling import wait_until

IMMUTABLE = "version 2.0.0 is already installed with different content; versions are immutable"


def by_sha256(url: str, data: bytes, version: str) -> dict:
    return {"version": version, "url": url, "sha256": hashlib.sha256(data).hexdigest()}


def wait_active(running: Running) -> dict:
    """The ``model`` section once active again (wait_status would take a failure before)."""
    assert wait_until(lambda: model_state(running).get("status") == "active", 30), \
        model_state(running)
    return model_state(running)


def test_same_version_with_other_content_is_refused_and_the_installed_one_serves(
        detector: Start, server: PackageServer, tmp_path: Path) -> None:
    first = package_bytes("2.0.0")
    other = package_bytes("2.0.0", extra={"notes.txt": b"retrained"})
    det = detector(desired=by_sha256(server.add("/a.zip", first), first, "2.0.0"))
    wait_status(det, "active", "2.0.0")
    record = json.loads((tmp_path / "repo" / ".content" / "graffiti-test" / "2.0.0.json")
                        .read_text())
    assert record["sha256"] == hashlib.sha256(first).hexdigest()

    det.edit("model", **by_sha256(server.add("/b.zip", other), other, "2.0.0"))
    state = wait_status(det, "failed", "2.0.0")
    assert state.get("error") == IMMUTABLE and state["failedName"] == "graffiti-test", state
    assert serving(det) == "2.0.0" and det.post("/score").status == 200
    assert not (tmp_path / "repo" / "graffiti-test" / "2.0.0" / "notes.txt").exists()
    assert [m["version"] for m in model_messages(det)] == ["2.0.0"]

    # The twin naming the installed content again is that package, serving: no download.
    server.requests.clear()
    det.edit("model", **by_sha256(server.add("/a.zip", first), first, "2.0.0"))
    assert wait_active(det).get("error") is None
    assert server.requests == []


def test_a_version_under_another_model_name_is_not_switched_to(
        detector: Start, server: PackageServer, tmp_path: Path) -> None:
    unpacked(tmp_path / "repo" / "other-model" / "3.0.0", "3.0.0", name="other-model")
    det = detector(desired={"version": "3.0.0"})
    state = wait_status(det, "failed", "3.0.0")
    assert "version 3.0.0 of model graffiti-test is not in the repository" in state["error"]
    assert det.get("/model").json["name"] == "graffiti-test" and serving(det) == "1.0.0"

    # graffiti-test 3.0.0 is another package than other-model 3.0.0: downloaded, installed.
    data = package_bytes("3.0.0")
    det.edit("model", **by_sha256(server.add("/g.zip", data), data, "3.0.0"))
    assert wait_active(det)["name"] == "graffiti-test" and serving(det) == "3.0.0"
    assert det.get("/model").json["name"] == "graffiti-test"
    assert [path.split("?")[0] for path, _ in server.requests] == ["/g.zip"]
    assert (tmp_path / "repo" / "other-model" / "3.0.0" / "model.onnx").is_file()


def test_which_installed_package_a_twin_entry_names(tmp_path: Path) -> None:
    zip_path = tmp_path / "p.zip"
    zip_path.write_bytes(b"package bytes")
    file_md5, file_sha = digests(zip_path)
    content = Content(sha256=file_sha, content_md5=file_md5)
    recorded = Installed("graffiti", "2.0.0", content)
    unrecorded = Installed("graffiti", "2.0.0", None)
    sha = hashlib.sha256(b"package bytes").hexdigest()
    md5_hex = hashlib.md5(b"package bytes").hexdigest()  # noqa: S324
    for twin in ({"sha256": sha.upper()}, {"content_md5": md5_b64(b"package bytes")},
                 {"content_md5": md5_hex}, {"sha256": sha, "content_md5": md5_hex}):
        assert is_wanted(recorded, DesiredModel(version="2.0.0", **twin), "other"), twin
    for twin in ({"sha256": "0" * 64}, {"content_md5": "not md5"},
                 {"sha256": sha, "content_md5": md5_b64(b"other")}):
        assert not is_wanted(recorded, DesiredModel(version="2.0.0", **twin), "graffiti"), twin
    assert not is_wanted(recorded, DesiredModel(version="2.0.1", sha256=sha), "graffiti")
    # Nothing to compare: the version of the serving model's name, never another name's.
    assert is_wanted(recorded, DesiredModel(version="2.0.0"), "graffiti")
    assert is_wanted(unrecorded, DesiredModel(version="2.0.0", sha256=sha), "graffiti")
    assert not is_wanted(unrecorded, DesiredModel(version="2.0.0", sha256=sha), "other")
    assert not is_wanted(recorded, DesiredModel(version="2.0.0"), None)


def test_the_repository_keeps_versions_immutable(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    one, two = Content("1" * 64, "b25l"), Content("2" * 64, "dHdv")
    first = repo.install(unpacked(tmp_path / "s1", "2.0.0"), "graffiti-test", "2.0.0", one)
    assert repo.content("graffiti-test", "2.0.0") == one
    assert repo.install(unpacked(tmp_path / "s2", "2.0.0"), "graffiti-test", "2.0.0",
                        one) == first
    with pytest.raises(Immutable, match="with different content; versions are immutable"):
        repo.install(unpacked(tmp_path / "s3", "2.0.0"), "graffiti-test", "2.0.0", two)
    assert repo.content("graffiti-test", "2.0.0") == one
    # A version from before records were kept is known by name and version: never replaced.
    unpacked(tmp_path / "repo" / "graffiti-test" / "1.0.0", "1.0.0")
    assert repo.installed("1.0.0") == [Installed("graffiti-test", "1.0.0", None)]
    with pytest.raises(Immutable, match="cannot be compared"):
        repo.install(unpacked(tmp_path / "s4", "1.0.0"), "graffiti-test", "1.0.0", one)
    repo.remove("graffiti-test", "2.0.0")
    assert repo.installed("2.0.0") == [] and repo.content("graffiti-test", "2.0.0") is None
