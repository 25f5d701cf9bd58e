"""``uploader-module`` as a real process: killed mid-upload, and given wrong credentials."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from contracts.blob_layout import API_VERSION
from edge_link.local import invoke_local_method
from local_run.relay import ByteCounter
from samples.clips import video_bytes, write_clip
from tests.support.azurite import ACCOUNT, DEV_KEY, Azurite, connection_string
from tests.uploader.conftest import UploaderProcess, wait_for

pytestmark = pytest.mark.integration

MakeProcess = Callable[[dict[str, str]], UploaderProcess]
BLOCK = 64 * 1024
# Request lines and headers of the few dozen requests after a restart, plus the thumbnail and
# the sidecar; far less than the video blocks the test checks are not re-sent.
OVERHEAD = 96 * 1024


def _env(conn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IOTEDGE_", "UPLOADER_", "GRAFFITI_IOTHUB"))}
    return {**env, "UPLOADER_UPLOAD__CONNECTION_STRING": conn, "GRAFFITI_DEVICE_ID": "edge-0001"}


def _twin(container: str, outbox: Path, **upload: Any) -> dict[str, Any]:
    return {"upload": {"container": container, "retry": {"initial_s": 0.2, "max_s": 1.0},
                       **upload},
            "outbox": {"dir": str(outbox), "scan_interval_s": 1.0}}


def _uncommitted(azurite: Azurite, container: str, name: str) -> list[Any]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string,
                                                      api_version=API_VERSION)
    try:
        return client.get_blob_client(container, name).get_block_list("uncommitted")[1]
    except ResourceNotFoundError:
        return []


def test_killed_during_a_block_upload_resumes_without_resending_staged_blocks(
        azurite: Azurite, container: str, outbox: Path,
        uploader_process: MakeProcess) -> None:
    video = video_bytes(2 * 1024 * 1024, seed=7)  # 32 blocks of 64 KB
    sidecar = write_clip(outbox, "ev-kill", video)
    name = "train-0001/cam-01/2026/11/21/221507_ev-kill.mp4"
    relay = ByteCounter(azurite.port)
    try:
        first = uploader_process(_env(connection_string(relay.port)))
        first.write_twin(_twin(container, outbox, block_size_mb=BLOCK / 1024 / 1024,
                               bandwidth_kbps=256))
        first.start()
        wait_for(lambda: len(_uncommitted(azurite, container, name)) >= 12, 30,
                 f"12 staged blocks; log:\n{first.log()}")
        first.kill()
        staged = _uncommitted(azurite, container, name)
        staged_bytes = sum(b.size for b in staged)
        assert 12 <= len(staged) < 32
        sent_before = relay.sent

        second = uploader_process(_env(connection_string(relay.port)))
        second.write_twin(_twin(container, outbox, block_size_mb=BLOCK / 1024 / 1024))
        second.start()
        clips = wait_for(lambda: second.outputs("clips"), 30,
                         f"the clip message; log:\n{second.log()}")
        assert second.terminate() == 0
        resent = relay.sent - sent_before
    finally:
        relay.close()

    assert clips[0]["eventId"] == "ev-kill"
    stored = BlobServiceClient.from_connection_string(
        azurite.connection_string, api_version=API_VERSION).get_blob_client(
        container, name).download_blob().readall()
    assert hashlib.sha256(stored).hexdigest() == sidecar.video.sha256
    resumed = re.search(r"upload\.resumed .*blocks_reused=(\d+) blocks_sent=(\d+)", second.log())
    assert resumed, second.log()
    assert int(resumed.group(1)) == len(staged)
    assert int(resumed.group(2)) == 32 - len(staged)
    # Measured on the wire, not taken from the log: only the missing blocks went again.
    assert resent <= len(video) - staged_bytes + OVERHEAD, (resent, staged_bytes)
    assert not list(outbox.glob("ev-kill.*"))


def test_wrong_credentials_give_a_clear_error_keep_files_and_recover_when_fixed(
        azurite: Azurite, container: str, outbox: Path,
        uploader_process: MakeProcess) -> None:
    wrong_key = base64.b64encode(b"not the key of this account, not at all" * 2).decode()
    write_clip(outbox, "ev-auth", video_bytes(20_000, seed=9))
    proc = uploader_process(_env(connection_string(azurite.port, key=wrong_key)))
    proc.write_twin(_twin(container, outbox))
    proc.start()
    status = wait_for(lambda: (r := proc.reported().get("upload", {})).get("state")
                      == "auth_refused" and r, 30, f"auth refusal reported; log:\n{proc.log()}")
    message = status["lastError"]["message"]
    assert f"account '{ACCOUNT}'" in message and f"container '{container}'" in message
    log = wait_for(lambda: "upload.auth_refused" in (text := proc.log()) and text, 5, "the log")
    assert re.search(r"ERROR uploader upload\.auth_refused .*account", log)
    for secret in (wrong_key, wrong_key[:20], DEV_KEY[:20]):
        assert secret not in log and secret not in str(proc.reported())
    assert sorted(p.name for p in outbox.glob("ev-auth.*")) == [
        "ev-auth.jpg", "ev-auth.json", "ev-auth.mp4"]
    assert proc.outputs("clips") == []
    code, answer = invoke_local_method(proc.data_dir, "upload_status", None)
    assert code == 200 and answer["state"] == "auth_refused" and answer["pendingClips"] == 1

    # The operator fixes the key through the twin: tried at once, not after auth_retry_s.
    started = time.monotonic()
    proc.write_twin({**_twin(container, outbox),
                     "upload": {**_twin(container, outbox)["upload"],
                                "connection_string": azurite.connection_string}})
    wait_for(lambda: proc.outputs("clips"), 20, f"the upload after the fix; log:\n{proc.log()}")
    assert time.monotonic() - started < 20
    assert proc.terminate() == 0
    assert DEV_KEY[:20] not in proc.log()
