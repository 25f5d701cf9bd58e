"""Settings of the detector module: inference, its Web API, events and the model to run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from config.common import BackoffSettings, LoggingSettings
from config.fields import Section, section, setting
from contracts.identifiers import Identifier

_DEVICE = re.compile(r"^(CPU|GPU(\.\d+)?|NPU|(AUTO|MULTI|HETERO):[A-Z0-9.,]+|AUTO)$")
#: A host name or IP literal as a URL names it (no scheme, port or path), compared lower-case.
HostName = Annotated[str, StringConstraints(to_lower=True, min_length=1, max_length=253,
                                            pattern=r"^[A-Za-z0-9._-]+$|^\[[0-9A-Fa-f:.]+\]$")]


class ServerSettings(Section):
    """The Web API (POST an image, get detections) and its limits."""

    host: str = setting("0.0.0.0", "Address to listen on.", restart=True)
    port: int = setting(8080, "TCP port to listen on.", restart=True, ge=1, le=65535)
    max_body_mb: float = setting(8.0, "Largest request body; larger gets 413.", unit="MB", gt=0,
                                 le=256)
    max_pixels: int = setting(40_000_000, "Largest decoded image (width x height); larger gets "
                              "413 before decoding, so a decompression bomb cannot exhaust "
                              "memory.", unit="px", ge=1, le=500_000_000)
    max_concurrent: int = setting(2, "Inferences run at once; more wait, the cameras taking "
                                  "turns (one waiting frame each, the newest).", ge=1, le=64)
    queue_wait_s: float = setting(1.0, "How long an excess request waits for a slot before 503 "
                                  "with Retry-After.", unit="s", ge=0, le=60)
    idle_timeout_s: float = setting(
        30.0, "A connection that has not sent a complete request header within this time of "
        "opening, or of its previous answer, is closed: idle keep-alive connections and "
        "clients that send their headers slowly cannot hold sockets.", unit="s",
        restart=True, gt=0, le=3600)
    body_timeout_s: float = setting(
        30.0, "The whole request body must arrive within this time of its header; a slower "
        "one gets 408 and its connection is closed.", unit="s", gt=0, le=600)


class InferenceSettings(Section):
    """Where and how the model runs. A change reloads the session without dropping requests."""

    device: str = setting(
        "CPU", "OpenVINO device: CPU, GPU, GPU.N, NPU or AUTO[:list]. Falls back to the plain "
        "CPU provider when OpenVINO cannot take the model or device.",
    )
    precision: Literal["default", "FP32", "FP16", "BF16", "ACCURACY"] = setting(
        "default", "OpenVINO precision hint (INFERENCE_PRECISION_HINT f32/f16/bf16; ACCURACY "
        "sets EXECUTION_MODE_HINT). `default` does what OpenVINO does natively: bf16 on a CPU "
        "with AVX512_BF16 or AMX, else f32.",
    )
    num_threads: int = setting(0, "Inference threads (OpenVINO INFERENCE_NUM_THREADS on CPU or "
                               "AUTO, and the CPU provider's pool); 0 lets the runtime choose.",
                               ge=0, le=256)
    cache_dir: Path | None = setting(
        Path("ov_cache"), "Folder for compiled models, so a restart does not recompile; a "
        "relative path is under the module's --data-dir. Empty disables the cache.",
    )
    load_timeout_s: float = setting(
        120.0, "Time a new model has to open, warm up and pass the sanity check in its trial "
        "process; one that takes longer (an endless loop in the graph) is refused and the "
        "serving model stays.", unit="s", gt=0, le=3600)
    load_memory_mb: int = setting(
        2048, "Memory (private data) a new model's trial process may use to open and warm it "
        "up; a model that needs more is refused and the serving model stays.", unit="MB",
        ge=256, le=1_048_576)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """An empty string would be the path ".", which is the data dir itself, not "off"."""
        return None if value == "" else value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"unknown device {value!r}: use CPU, GPU, GPU.N, NPU or AUTO[:list]")
        return value


class ThresholdSettings(Section):
    """Post-processing of the model's raw output."""

    min_score: float = setting(0.5, "Lowest score returned.", ge=0, le=1)
    label_min_score: dict[str, Annotated[float, Field(ge=0, le=1)]] = setting(
        {}, "Per-label override of min_score.",
    )
    nms_iou: float = setting(0.45, "Overlap above which the weaker of two boxes of one label is "
                             "dropped.", ge=0, le=1)
    labels: list[str] = setting([], "Classes of interest; empty returns every label.")
    max_detections: int = setting(100, "Most detections returned per image.", ge=1, le=1000)


class EventSettings(Section):
    """Detection messages to the `detections` output."""

    enabled: bool = setting(True, "Send detections above the thresholds to output `detections`.")
    rate_limit_s: float = setting(10.0, "At most one message per camera per this interval, so a "
                                  "parked tagged carriage does not flood IoT Hub.", unit="s",
                                  ge=0, le=86400)


class CustomVisionSettings(Section):
    """The Custom Vision compatible routes (`/image`, `/customvision/v3.x/prediction/...`),
    so clients written for Custom Vision's prediction API or its exported container work as
    they are. `/score` never reads these."""

    prediction_key: SecretStr | None = setting(
        None, "When set, every Custom Vision route requires this value in the "
        "`Prediction-Key` header (401 otherwise); empty accepts any key or none, as the "
        "exported container does. Set it through the environment "
        "(DETECTOR_CUSTOM_VISION__PREDICTION_KEY) or the twin. Redacted wherever it is shown.")
    min_probability: float = setting(
        0.10, "Lowest probability the Custom Vision routes return, for every tag (the exported "
        "container's floor); the twin's `thresholds` decide `/score` and the detection "
        "messages.", ge=0, le=1)
    url_enabled: bool = setting(
        False, "Serve the `.../url` and `.../url/nostore` routes, where the detector fetches "
        "the image itself. Off, they answer 403 naming this setting: a detector that fetches "
        "what a request names can be made to reach inside the device's network.")
    url_allowed_hosts: list[HostName] = setting(
        [], "Hosts (exact names or IP literals, as the URL writes them) the `url` routes may "
        "fetch from, redirects included; empty allows none. Link-local and cloud metadata "
        "addresses are refused whatever this says.", max_length=100)


class DesiredModel(Section):
    """The model the twin asks for. The seed's keys FileName, DownloadUrl and ContentMD5 work."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )

    version: Identifier | None = setting(
        None, "Version to run; a version already in the repository is switched to without "
        "downloading. 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
        "digit (it names a folder).", max_length=64)
    url: str | None = Field(
        None, description="http(s):// or file:// URL of the model package zip. Its SAS query "
        "string and any user:password are never logged or reported. On IoT Edge a file:// URL "
        "must point inside model_repository.file_url_dir.",
        validation_alias=AliasChoices("url", "DownloadUrl"),
    )
    content_md5: str | None = Field(
        None, description="Base64 of the zip's MD5 digest, as Azure Storage writes ContentMD5.",
        validation_alias=AliasChoices("content_md5", "ContentMD5"),
    )
    sha256: str | None = setting(None, "Hex SHA-256 of the zip.", pattern=r"^[0-9a-fA-F]{64}$")
    file_name: str | None = Field(
        None, description="File name of the zip; may carry the version, e.g. graffiti-1.1.zip.",
        validation_alias=AliasChoices("file_name", "FileName"),
    )

    @model_validator(mode="after")
    def _url_scheme(self) -> DesiredModel:
        if self.url is not None and not self.url.startswith(("http://", "https://", "file://")):
            raise ValueError("url must start with http://, https:// or file://")
        return self


class ModelRepositorySettings(Section):
    """The local model store on the module's volume, and how packages are fetched into it."""

    dir: Path = setting(Path("models"), "Root of <name>/<version>/; a relative path is under "
                        "the module's --data-dir.", restart=True)
    keep_versions: int = setting(3, "Versions kept per model name; the active one is never "
                                 "pruned.", ge=1, le=50)
    allow_unverified: bool = setting(False, "Accept a package whose twin entry has no checksum.")
    connect_timeout_s: float = setting(10.0, "Download connect timeout.", unit="s", gt=0, le=300)
    read_timeout_s: float = setting(30.0, "Download read timeout.", unit="s", gt=0, le=600)
    bandwidth_kbps: float = setting(0.0, "Download cap (1 kB = 1000 bytes) so the model does "
                                    "not starve the camera uplink; 0 is uncapped.", unit="kB/s",
                                    ge=0, le=1_000_000)
    retry: BackoffSettings = section(BackoffSettings, "Pacing of download retries.")
    max_package_mb: float = setting(512.0, "Largest package, downloaded or unpacked; a "
                                    "download stops there even when the server never ends "
                                    "the body.", unit="MB", gt=0, le=1_048_576)
    file_url_dir: Path | None = setting(
        None, "On IoT Edge, where the twin comes from the cloud, a file:// model URL must point "
        "inside this folder (after resolving links); empty means model_repository.dir, the "
        "models volume. Local runs accept any file:// URL.")
    allow_link_local: bool = setting(
        False, "Accept a model URL whose host is, or resolves to, a link-local address "
        "(169.254.0.0/16, fe80::/10: where cloud metadata services answer) or Azure's "
        "platform address 168.63.129.16. Off, such a URL is refused.")


class DetectorSettings(Section):
    """Everything the detector module reads from its twin."""

    server: ServerSettings = section(ServerSettings, "Web API.")
    inference: InferenceSettings = section(InferenceSettings, "Inference device and threads.")
    thresholds: ThresholdSettings = section(ThresholdSettings, "Post-processing.")
    events: EventSettings = section(EventSettings, "Detection messages.")
    custom_vision: CustomVisionSettings = section(CustomVisionSettings,
                                                  "Custom Vision compatible routes.")
    model: DesiredModel = section(DesiredModel, "Model requested through the twin.")
    model_repository: ModelRepositorySettings = section(ModelRepositorySettings,
                                                         "Local model repository.")
    logging: LoggingSettings = section(LoggingSettings, "Log output.")
