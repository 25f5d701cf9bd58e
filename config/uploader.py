"""Settings of the uploader module: the outbox and the blob endpoint it drains into."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from config.common import BackoffSettings, LoggingSettings
from config.fields import Section, section, setting
from contracts.blob_layout import API_VERSION, CONTAINER


class UploadSettings(Section):
    """The blob endpoint: Blob Storage on IoT Edge on a train, Azurite in tests."""

    connection_string: SecretStr | None = setting(
        None, "Storage connection string; set it through the environment "
        "(UPLOADER_UPLOAD__CONNECTION_STRING) or the twin. Redacted wherever it is shown.",
        max_length=4096,
    )
    container: str = setting(
        CONTAINER, "Container the clips go to; created when missing.",
        min_length=3, max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
    )
    api_version: str = setting(
        API_VERSION, "Storage API version. Blob Storage on IoT Edge refuses newer ones.",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
    )
    block_size_mb: float = setting(4.0, "Block size for staged uploads of large clips.",
                                   unit="MB", gt=0, le=100)
    validate_blocks: bool = setting(
        False, "Send each block's MD5 so the service checks it on arrival (Put Block with "
        "Content-MD5). Costs an MD5 pass per block on both sides; off by default because HTTPS "
        "already protects data in transit and Blob on Edge is reached over the device's own "
        "network. Single-request uploads (files up to one block) are always checked.",
    )
    max_concurrency: int = setting(2, "Clips uploaded at once.", ge=1, le=16)
    bandwidth_kbps: float = setting(0.0, "Upload cap for all uploads together (1 kB = 1000 "
                                    "bytes); the train's uplink is shared. 0 is uncapped.",
                                    unit="kB/s", ge=0, le=10_000_000)
    timeout_s: float = setting(60.0, "Timeout of one storage request.", unit="s", gt=0, le=600)
    retry: BackoffSettings = section(BackoffSettings, "Pacing of retries while the endpoint "
                                     "is down.")
    auth_retry_s: float = setting(600.0, "Wait between attempts while credentials are refused.",
                                  unit="s", gt=0, le=86400)
    keep_uploaded_hours: float = setting(0.0, "Keep local files this long after their blob is "
                                         "confirmed; 0 deletes at once.", unit="h", ge=0,
                                         le=24 * 366)


class OutboxSettings(Section):
    """The local folder of finished clips, shared with the camera module."""

    dir: Path = setting(Path("outbox"), "Folder watched for finished clips, the camera's "
                        "recording.outbox_dir; a relative path is under the module's "
                        "--data-dir.", restart=True)
    quota_mb: float = setting(2048.0, "Most disk the outbox may use (pending, incomplete and "
                              "kept clips; quarantine/ is not counted); beyond it kept clips "
                              "are deleted, then pending clips evicted with an alert.",
                              unit="MB", gt=0, le=100_000_000)
    eviction: Literal["oldest", "lowest_score"] = setting(
        "oldest", "Which pending clip goes first when the quota is exceeded: `oldest`, or "
        "`lowest_score` (max score, oldest first among equals). A clip being uploaded is "
        "never evicted.",
    )
    scan_interval_s: float = setting(30.0, "Full rescan interval, besides file-system events.",
                                     unit="s", gt=0, le=3600)
    incomplete_grace_s: float = setting(600.0, "A clip without its sidecar for this long is "
                                        "reported as an incomplete leftover.", unit="s", gt=0,
                                        le=7 * 86400)
    min_free_mb: float = setting(200.0, "Free disk space below which a low disk is reported "
                                 "(alert and reported properties); uploading goes on.",
                                 unit="MB", ge=0, le=100_000_000)


class UploaderSettings(Section):
    """Everything the uploader module reads from its twin."""

    upload: UploadSettings = section(UploadSettings, "Blob endpoint.")
    outbox: OutboxSettings = section(OutboxSettings, "Outbox folder.")
    logging: LoggingSettings = section(LoggingSettings, "Log output.")
