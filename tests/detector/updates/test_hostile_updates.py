"""Hostile model updates, one test per mechanism (issue 16): identifiers before any path,
untrusted active.json, where a model URL may point, no digest or credential in any error,
and the update worker under supervision."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from detector_module.updates.download import DownloadError, DownloadOptions, download, safe_url
from infra.logs import KeyValueFormatter
from tests.detector.running import Running
from tests.detector.updates.conftest import md5_b64, package_bytes, package_file, unpacked
from tests.detector.updates.server import PackageServer
from tests.detector.updates.test_updates import model_state, serving, wait_status
from tests.support.polling import wait_until

Start = Callable[..., Running]


def log_lines(caplog: pytest.LogCaptureFixture) -> str:
    """The captured records as the module writes them (redaction and escaping included)."""
    formatter = KeyValueFormatter()
    return "\n".join(formatter.format(r) for r in caplog.records)


@pytest.mark.parametrize("version", ["absolute", "../../evil/9.0.0", "9.0.0/../../x", "..",
                                     "v 1", "x" * 65])
def test_a_version_that_is_not_an_identifier_is_refused_before_any_use(
        detector: Start, tmp_path: Path, version: str) -> None:
    evil = unpacked(tmp_path / "evil" / "9.0.0", "9.0.0")
    if version == "absolute":
        version = str(evil)
    (tmp_path / "repo" / "graffiti-test").mkdir(parents=True)
    det = detector()
    assert det.service.wait_ready(20)
    det.edit("model", version=version, url=evil.as_uri(), sha256="0" * 64)

    def rejected() -> list[dict]:
        report = det.reported().get("settings", {})
        return (report.get("rejected") or {}).get("errors", [])
    assert wait_until(rejected, 10), det.reported().get("settings")
    assert rejected()[0]["path"] == "model.version"
    assert "not a valid identifier" in rejected()[0]["reason"]
    assert det.runtime.settings.model.version is None  # the last good settings stay
    assert serving(det) == "1.0.0"
    assert not (tmp_path / "repo" / "active.json").exists()
    assert model_state(det).get("status") != "active"


@pytest.mark.parametrize("pointer", [
    {"name": "../..", "version": "etc"}, {"name": "graffiti-test", "version": "/etc"},
    {"name": 7, "version": ["1.0.0"]}, ["graffiti-test", "2.0.0"], "not json at all",
])
def test_a_bad_active_pointer_boots_the_bundled_sample(
        detector: Start, tmp_path: Path, pointer: object,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    unpacked(tmp_path / "repo" / "graffiti-test" / "2.0.0", "2.0.0")
    text = pointer if isinstance(pointer, str) else json.dumps(pointer)
    (tmp_path / "repo" / "active.json").write_text(text)
    det = detector(model=None)
    assert det.service.wait_ready(30), det.reported().get("inference")
    assert det.get("/model").json["name"] == "graffiti-sample"
    assert "model.active_pointer_invalid" in caplog.text
    assert det.runtime.workers.not_running() == []


def test_file_urls_on_iot_edge_only_inside_the_configured_folder(
        detector: Start, tmp_path: Path) -> None:
    data = package_bytes("2.0.0")
    outside = tmp_path / "elsewhere" / "graffiti-test-2.0.0.zip"
    inside = tmp_path / "drops" / "graffiti-test-2.0.0.zip"
    for path in (outside, inside):
        path.parent.mkdir()
        path.write_bytes(data)
    (tmp_path / "drops" / "link.zip").symlink_to(outside)
    det = detector(file_url_dir=str(tmp_path / "drops"))
    assert det.service.wait_ready(20)
    det.runtime.link.kind = "iothub"  # type: ignore[misc] - the twin now comes from the cloud
    for attempt, refused in enumerate((outside, tmp_path / "drops" / "link.zip",
                                       tmp_path / "drops" / ".." / "elsewhere" / outside.name)):
        version = f"2.0.{attempt + 1}"  # each attempt its own version: no stale state
        det.edit("model", version=version, url=f"file://{refused}", content_md5=md5_b64(data))
        state = wait_status(det, "failed", version)
        assert "model_repository.file_url_dir" in state["error"], state
    assert serving(det) == "1.0.0"
    det.edit("model", version="2.0.0", url=inside.as_uri(), content_md5=md5_b64(data))
    wait_status(det, "active", "2.0.0")


def test_local_runs_keep_any_file_url(detector: Start, tmp_path: Path) -> None:
    anywhere = tmp_path / "anywhere" / "m.zip"
    data = package_file(anywhere, "2.0.0")
    det = detector(desired={"version": "2.0.0", "url": anywhere.as_uri(),
                            "content_md5": md5_b64(data)})
    wait_status(det, "active", "2.0.0")


def test_link_local_model_urls_are_refused(detector: Start) -> None:
    det = detector(desired={"version": "2.0.0", "sha256": "0" * 64,
                            "url": "http://169.254.169.254/latest/meta-data/m.zip?sig=SECRET"})
    state = wait_status(det, "failed", "2.0.0")
    assert "link-local" in state["error"] and "SECRET" not in state["error"]
    assert serving(det) == "1.0.0"


def test_url_policy_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from detector_module.updates.download import UrlPolicy, check_url

    strict, relaxed = UrlPolicy(), UrlPolicy(allow_link_local=True)
    for url in ("http://169.254.169.254/x", "http://[fe80::1]/x",
                "http://[::ffff:169.254.169.254]/x", "https://169.254.0.1:8443/x",
                "http://168.63.129.16/machine?comp=goalstate"):
        with pytest.raises(DownloadError, match="link-local"):
            check_url(url, strict)
        check_url(url, relaxed)
    for url in ("ftp://host/x", "http:///x", "http://host:99999/x"):
        with pytest.raises(DownloadError):
            check_url(url, strict)
    # A name that resolves to a link-local address is refused when it is connected to.
    real = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> list:
        if host == "metadata.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(DownloadError, match="link-local address 169.254.169.254"):
        download("http://metadata.example/m.zip", tmp_path, version="1",
                 options=DownloadOptions(), cancelled=lambda: False)


def test_errors_never_tell_a_digest_or_credentials(detector: Start, server: PackageServer,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    secret = tmp_path / "secret.zip"
    secret.write_bytes(b"the content of some file on the device")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    det = detector(desired={"version": "2.0.0", "url": secret.as_uri(), "sha256": "0" * 64,
                            "content_md5": md5_b64(b"other")})
    state = wait_status(det, "failed", "2.0.0")
    assert "mismatch" in state["error"]
    assert digest not in state["error"] and md5_b64(secret.read_bytes()) not in state["error"]
    assert digest not in log_lines(caplog)
    data = package_bytes("2.1.0")
    url = server.add("/m.zip", data).replace("http://", "http://user:PASSW0RD@")
    det.edit("model", version="2.1.0", url=url, content_md5=md5_b64(data), sha256=None)
    wait_status(det, "active", "2.1.0")
    for text in (log_lines(caplog), json.dumps(det.reported()),
                 (det.data_dir / "outputs" / "model.jsonl").read_text()):
        assert "PASSW0RD" not in text and "SECRETSIG" not in text
    assert safe_url("https://u:p@host:1/a/b.zip?sv=1&sig=S#f") == "https://host:1/a/b.zip"


def test_an_unexpected_error_in_the_update_worker_is_supervised(
        detector: Start, server: PackageServer) -> None:
    det = detector()
    assert det.service.wait_ready(20)
    manager = det.service.updates
    real = manager._handle
    calls = []

    def once_broken(*args: object) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("something unforeseen")
        real(*args)  # type: ignore[arg-type]
    manager._handle = once_broken  # type: ignore[method-assign]
    data = package_bytes("2.0.0")
    det.edit("model", version="2.0.0", url=server.add("/m.zip", data),
             content_md5=md5_b64(data))
    assert wait_until(lambda: "internal error" in (model_state(det).get("error") or ""), 10)
    worker = det.reported()["workers"]["model-updates"]
    assert worker["failures"] == 1 and "something unforeseen" in worker["lastError"]
    alerts = (det.data_dir / "outputs" / "alerts.jsonl")
    assert wait_until(lambda: alerts.exists() and "model-updates" in alerts.read_text(), 5)
    # The worker is back (after its backoff) and takes the next patch.
    assert wait_until(lambda: det.runtime.workers.health()["model-updates"]["state"]
                      == "running", 10)
    data = package_bytes("2.0.1")
    det.edit("model", version="2.0.1", url=server.add("/n.zip", data),
             content_md5=md5_b64(data))
    wait_status(det, "active", "2.0.1")


@pytest.mark.parametrize(("section", "field", "value"), [
    ("model_repository", "bandwidth_kbps", float("inf")),
    ("model_repository", "max_package_mb", 1e308),
    ("inference", "load_timeout_s", float("inf")),
])
def test_numbers_without_end_are_refused_where_a_bound_exists(section: str, field: str,
                                                              value: float) -> None:
    from pydantic import ValidationError

    from config.detector import DetectorSettings

    with pytest.raises(ValidationError, match=field):
        DetectorSettings.model_validate({section: {field: value}})
