"""The uploader service against a real Azurite (in-process service, real storage)."""

from __future__ import annotations

import errno
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from contracts.blob_layout import API_VERSION
from local_run.processes import free_port
from samples.clips import at, video_bytes, write_clip
from tests.support.azurite import Azurite, connection_string, start_azurite
from tests.uploader.conftest import FakeHost, Running, settings_doc, wait_for
from uploader_module.storage import BlobTarget

pytestmark = pytest.mark.integration

RunService = Callable[[FakeHost], Running]


def _container(azurite: Azurite, name: str) -> ContainerClient:
    client = BlobServiceClient.from_connection_string(azurite.connection_string,
                                                      api_version=API_VERSION)
    return client.get_container_client(name)


def _blob_names(container: ContainerClient) -> list[str]:
    if not container.exists():
        return []
    return sorted(b.name for b in container.list_blobs())


def _uploaded(host: FakeHost, count: int) -> Callable[[], bool]:
    return lambda: len(host.messages("clips")) >= count


def test_clip_set_lands_with_names_metadata_types_and_bytes(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    video = video_bytes(9 * 1024 * 1024 + 123)  # three 4 MB blocks, the last one short
    sidecar = write_clip(outbox, "ev-0001", video, max_score=0.83, carriage="4021",
                         position="left")
    order: list[str] = []
    real_put = BlobTarget.put
    monkeypatch.setattr(BlobTarget, "put", lambda self, name, *a, **k: (
        order.append(name), real_put(self, name, *a, **k))[1])
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox,
                                 upload={"validate_blocks": True}))
    run_service(host)
    wait_for(_uploaded(host, 1), 30, "the clip to be uploaded")

    prefix = "train-0001/cam-01/2026/11/21/221507_ev-0001"
    assert order == [f"{prefix}.mp4", f"{prefix}.jpg", f"{prefix}.json"]
    blobs = _container(azurite, container)
    assert _blob_names(blobs) == sorted(order)
    expected_types = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".json": "application/json"}
    for name in order:
        props = blobs.get_blob_client(name).get_blob_properties()
        assert props.metadata["event_id"] == "ev-0001"
        assert props.metadata["camera"] == "cam-01" and props.metadata["train"] == "train-0001"
        assert props.metadata["max_score"] == "0.8300"
        assert props.metadata["labels"] == "graffiti"
        assert props.metadata["model_version"] == "1.2.0"
        assert (props.metadata["carriage"], props.metadata["position"]) == ("4021", "left")
        assert props.content_settings.content_md5 is not None
    for name, suffix in zip(order, (".mp4", ".jpg", ".json"), strict=True):
        props = blobs.get_blob_client(name).get_blob_properties()
        assert props.content_settings.content_type == expected_types[suffix]
    stored = blobs.get_blob_client(f"{prefix}.mp4").download_blob().readall()
    assert hashlib.sha256(stored).hexdigest() == sidecar.video.sha256

    message = host.messages("clips")[0]
    assert message["eventId"] == "ev-0001" and message["maxScore"] == 0.83
    assert (message["carriage"], message["position"]) == ("4021", "left")
    assert [b["name"] for b in message["blobs"]] == order
    assert message["blobs"][0]["bytes"] == len(video)
    assert "sig=" not in str(message) and "AccountKey" not in str(message)
    wait_for(lambda: not list(outbox.glob("ev-0001.*")), 5, "local files to be deleted")
    status = wait_for(lambda: (s := host.upload_status()).get("lastSuccess") and s, 5,
                      "a reported success")
    assert status["lastSuccess"]["eventId"] == "ev-0001" and status["state"] == "ok"


def test_clips_written_while_stopped_are_uploaded_at_start_and_kept_when_asked(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService) -> None:
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox,
                                 upload={"keep_uploaded_hours": 1.0}))
    run_service(host).stop()
    for i in range(3):
        write_clip(outbox, f"ev-10{i}", video_bytes(50_000, seed=i), start=at(i))
    host2 = FakeHost(host.doc)
    run_service(host2)
    wait_for(_uploaded(host2, 3), 30, "three clips uploaded after the start")
    assert sorted(m["eventId"] for m in host2.messages("clips")) == ["ev-100", "ev-101",
                                                                      "ev-102"]
    assert len(_blob_names(_container(azurite, container))) == 9
    wait_for(lambda: len(list((outbox / "uploaded").glob("*.json"))) == 3, 5,
             "uploaded clips kept in uploaded/")
    assert not list(outbox.glob("ev-*"))


def test_endpoint_down_then_back_uploads_everything_once(
        tmp_path: Path, container: str, outbox: Path, run_service: RunService,
        caplog: pytest.LogCaptureFixture) -> None:
    server = start_azurite(tmp_path)
    try:
        host = FakeHost(settings_doc(server.connection_string, container, outbox))
        run_service(host)
        write_clip(outbox, "ev-200", video_bytes(100_000, seed=1), start=at(0))
        wait_for(_uploaded(host, 1), 30, "the first clip")
        server.stop()
        for i in range(1, 4):
            write_clip(outbox, f"ev-20{i}", video_bytes(100_000, seed=10 + i), start=at(i))
        status = wait_for(lambda: (s := host.upload_status()).get("state") == "unreachable"
                          and s, 20, "the outage to be reported")
        assert status["lastError"]["kind"] == "unreachable"
        assert "unreachable" in status["lastError"]["message"]
        wait_for(lambda: host.upload_status().get("pendingClips") == 3, 10,
                 "three pending clips reported")
        # Down for several backoff rounds, not just one failed attempt.
        wait_for(lambda: sum(r.getMessage() == "upload.endpoint_unreachable"
                             for r in caplog.records) >= 3, 20, "three failed attempts")
        assert len(list(outbox.glob("ev-20*.json"))) == 3
        server.start()
        wait_for(_uploaded(host, 4), 60, "every clip after the endpoint came back")
        events = [m["eventId"] for m in host.messages("clips")]
        assert sorted(events) == ["ev-200", "ev-201", "ev-202", "ev-203"]
        names = _blob_names(_container(server, container))
        assert len(names) == 12 and len(set(names)) == 12
        wait_for(lambda: host.upload_status().get("state") == "ok", 10, "state ok again")
    finally:
        server.stop()


def test_quota_evicts_the_oldest_pending_clip_and_alerts(
        container: str, outbox: Path, run_service: RunService) -> None:
    now = time.time()
    for i in range(4):
        write_clip(outbox, f"ev-30{i}", video_bytes(400_000, seed=i), mtime=now - 100 + i)
    # Nothing listens there: the clips stay pending, so the quota has to act.
    doc = settings_doc(connection_string(free_port()), container, outbox,
                       outbox={"quota_mb": 1.2})
    host = FakeHost(doc)
    run_service(host)
    kind, alert = wait_for(lambda: host.typed("alerts"), 20, "an eviction alert")[0]
    assert kind == "clip.evicted" and alert["eventId"] == "ev-300"
    assert alert["policy"] == "oldest"
    assert not list(outbox.glob("ev-300.*"))
    assert len(list(outbox.glob("ev-30*.json"))) == 3
    wait_for(lambda: host.upload_status().get("evictedClips") == 1, 5, "eviction counted")


def test_corrupt_clips_are_quarantined_with_a_reason_and_an_alert(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService) -> None:
    write_clip(outbox, "ev-400", video_bytes(10_000, seed=1), start=at(0))
    (outbox / "ev-400.mp4").write_bytes(video_bytes(10_000, seed=2))  # not what the sidecar says
    write_clip(outbox, "ev-401", video_bytes(10_000, seed=3), start=at(1))
    (outbox / "ev-401.json").write_text('{"event_id": "ev-401", truncated')
    write_clip(outbox, "ev-402", video_bytes(10_000, seed=4), start=at(2))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))
    run_service(host)
    wait_for(lambda: len(host.messages("alerts")) >= 2, 20, "two quarantine alerts")
    wait_for(_uploaded(host, 1), 20, "the good clip")
    alerts = {a["stem"]: a for a in host.messages("alerts")}
    types = {a["stem"]: kind for kind, a in host.typed("alerts")}
    assert types["ev-400"] == "clip.quarantined" and "sha256" in alerts["ev-400"]["reason"]
    assert "not JSON" in alerts["ev-401"]["reason"]
    for stem in ("ev-400", "ev-401"):
        folder = outbox / "quarantine" / stem
        assert sorted(p.name for p in folder.iterdir()) == [
            f"{stem}.jpg", f"{stem}.json", f"{stem}.mp4", "reason.json"]
    assert [m["eventId"] for m in host.messages("clips")] == ["ev-402"]
    assert all("ev-400" not in n and "ev-401" not in n
               for n in _blob_names(_container(azurite, container)))


def test_incomplete_leftover_is_reported_and_not_uploaded(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService) -> None:
    outbox.mkdir(parents=True)
    (outbox / "ev-500.mp4").write_bytes(b"half a clip")
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))
    run_service(host)
    kind, alert = wait_for(lambda: host.typed("alerts"), 10, "an incomplete-clip alert")[0]
    assert kind == "clip.incomplete" and alert["files"] == ["ev-500.mp4"]
    assert (outbox / "ev-500.mp4").exists()
    assert wait_for(lambda: host.upload_status().get("incompleteClips") == 1, 5, "the count")



def test_low_disk_is_reported_and_uploading_goes_on(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService) -> None:
    write_clip(outbox, "ev-600", video_bytes(10_000, seed=6))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox,
                                 outbox={"min_free_mb": 1e8}))  # 100 TB: more than any disk
    run_service(host)
    alert = wait_for(lambda: [a for kind, a in host.typed("alerts") if kind == "disk.low"],
                     10, "a low-disk alert")[0]
    assert alert["freeBytes"] > 0
    wait_for(_uploaded(host, 1), 20, "the upload despite the low disk")
    assert wait_for(lambda: host.upload_status().get("diskLow"), 5, "diskLow reported")


def test_a_full_disk_while_quarantining_is_reported_and_the_clip_kept(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("uploader_module.service.quarantine", no_space)
    write_clip(outbox, "ev-700", video_bytes(10_000, seed=7))
    (outbox / "ev-700.json").write_text("{broken")
    write_clip(outbox, "ev-701", video_bytes(10_000, seed=8), start=at(1))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))
    run_service(host)
    wait_for(_uploaded(host, 1), 20, "the healthy clip, after the failed quarantine")
    error = wait_for(lambda: host.upload_status().get("lastError"), 5, "the error")
    assert error["kind"] == "local" and "No space left" in error["message"]
    assert (outbox / "ev-700.json").exists() and (outbox / "ev-700.mp4").exists()
