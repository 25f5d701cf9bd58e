"""Settings of the camera module: one camera per module instance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from config.common import BackoffSettings, LoggingSettings
from config.fields import IDENTIFIER_SCHEMA, Section, TwinKey, section, setting
from contracts.identifiers import Identifier

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Unit, Unit]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]
# Bounds on what the twin may hand over, so one value cannot fill the reported properties.
URL_MAX = 2048
LABELS_MAX = 100
ZONES_MAX = 32
Label = Annotated[str, Field(min_length=1, max_length=128)]


class IdentitySettings(Section):
    """Names that travel with every event and clip so operators know where a sighting was."""

    train_id: Identifier = setting(
        "train-0001", "Train (or depot) the camera belongs to; part of every blob name.",
        schema=IDENTIFIER_SCHEMA,
    )
    camera_id: Identifier = setting(
        "cam-01", "Camera name, unique on the train; part of every event id and blob name.",
        schema=IDENTIFIER_SCHEMA,
    )
    carriage: Identifier | None = setting(
        None, "Carriage (car) the camera is mounted on, e.g. 4021, so a cleaning crew knows "
        "which car to go to; carried in sidecars, blob metadata and camera messages. "
        "Unset (null, the default) means not known, as for a depot camera.",
        schema=IDENTIFIER_SCHEMA,
    )
    position: Identifier | None = setting(
        None, "Where on the carriage the camera looks, a short label such as left, right, "
        "front, rear or cab (any identifier: cars differ); travels with the carriage. Unset "
        "means not known.", schema=IDENTIFIER_SCHEMA,
    )


class StreamSettings(Section):
    """Where the video comes from and how hard to try when the camera misbehaves."""

    detect_url: str = setting(
        "rtsp://127.0.0.1:8554/camera",
        "Stream sampled for detection: rtsp:// URL, or a video file path for tests and demos. "
        "Often the camera's low-resolution sub-stream.",
        min_length=1, max_length=URL_MAX,
    )
    record_url: str | None = setting(
        None, "Stream recorded into clips (the camera's main stream); empty means detect_url.",
        max_length=URL_MAX,
    )
    transport: Literal["tcp", "udp"] = setting(
        "tcp", "RTSP transport. TCP survives lossy links without smeared frames."
    )
    open_timeout_s: float = setting(10.0, "Give up opening the stream after this.", unit="s",
                                    gt=0, le=120)
    read_timeout_s: float = setting(5.0, "Give up on one read after this, so a hung camera "
                                    "cannot block the module.", unit="s", gt=0, le=120)
    stall_timeout_s: float = setting(20.0, "No frame for this long counts as a stall and forces a "
                                     "reconnect.", unit="s", gt=0, le=600)
    reconnect: BackoffSettings = section(BackoffSettings, "Pacing of reconnect attempts.")
    loop_file: bool = setting(False, "Loop a video file source (demo); ignored for rtsp://.")


class SamplingSettings(Section):
    """How often frames are asked about, and where the detector is."""

    detect_fps: float = setting(5.0, "Frames per second sent to the detector. The newest frame "
                                "wins; older ones are skipped, never queued.", unit="1/s",
                                gt=0, le=30)
    detector_url: str = setting(
        "http://127.0.0.1:8080", "Base URL of the detector module's Web API.", min_length=1,
        max_length=URL_MAX,
    )
    request_timeout_s: float = setting(2.0, "Timeout of one /score request.", unit="s", gt=0,
                                       le=60)
    jpeg_quality: int = setting(85, "JPEG quality of frames sent to the detector.", ge=30, le=100)
    idle_mode: Literal["keyframes", "off"] = setting(
        "keyframes", "Depot idle mode: `keyframes` decodes only the detect stream's keyframes "
        "(one sample per keyframe, a fraction of the CPU) while the camera has seen nothing "
        "for idle_quiet_s; a detection at or above wake_score brings full decoding back from "
        "the next keyframe. Recording is unchanged. `off` always decodes every frame.",
    )
    wake_score: float = setting(
        0.3, "Score of a detection that ends idle mode. A value above the trigger's lowest "
        "threshold (min_score or a label_min_score) is lowered to it, so whatever could "
        "start an event also wakes the camera.", ge=0, le=1,
    )
    idle_quiet_s: float = setting(30.0, "How long a camera must have had no event and no "
                                  "detection at or above wake_score before it goes idle.",
                                  unit="s", ge=1, le=3600)
    idle_max_gop_s: float = setting(
        4.0, "Longest keyframe interval (GOP) at which idle mode is used: an idle camera "
        "notices graffiti up to one GOP late. A stream with a longer GOP is always decoded in "
        "full, and the reason is reported.", unit="s", gt=0, le=60,
    )


class TriggerSettings(Section):
    """When detections become an event. All of these apply live from the twin."""

    labels: list[Label] = setting(
        ["graffiti"], "Classes of interest; detections of other labels are ignored. Empty means "
        "every label.", max_length=LABELS_MAX,
    )
    min_score: float = setting(0.5, "Lowest score for a single detection to count.", ge=0, le=1)
    label_min_score: dict[TwinKey, Annotated[float, Field(ge=0, le=1)]] = setting(
        {}, "Per-label override of min_score, e.g. {graffiti: 0.6}.", max_length=LABELS_MAX,
    )
    confirm_mode: Literal["n_of_m", "median"] = setting(
        "n_of_m", "Rule over the last confirm_window samples that starts an event: `n_of_m` "
        "needs confirm_hits samples with a qualifying detection; `median` needs the median of "
        "the best scores to reach confirm_median_score.",
    )
    confirm_window: int = setting(5, "Samples considered by the confirmation rule.", ge=1, le=100)
    confirm_hits: int = setting(3, "Samples with a detection needed (n_of_m).", ge=1, le=100)
    confirm_median_score: float = setting(0.5, "Median score needed (median).", ge=0, le=1)
    min_box_area: float = setting(0.0005, "Smallest box that counts, as a fraction of the frame.",
                                  unit="fraction", ge=0, le=1)
    max_box_area: float = setting(1.0, "Largest box that counts, as a fraction of the frame.",
                                  unit="fraction", ge=0, le=1)
    include_zones: list[Polygon] = setting(
        [], "Normalised polygons [[x, y], ...]; when any is given, a box counts only if its "
        "centre lies inside one.", max_length=ZONES_MAX,
    )
    exclude_zones: list[Polygon] = setting(
        [], "Normalised polygons; a box whose centre lies inside one never counts.",
        max_length=ZONES_MAX,
    )
    cooldown_s: float = setting(30.0, "After an event ends, no new event starts for this long "
                                "(a parked tag must not yield a clip every few seconds).",
                                unit="s", ge=0, le=86400)

    @model_validator(mode="after")
    def _consistent(self) -> TriggerSettings:
        if self.confirm_hits > self.confirm_window:
            raise ValueError(f"confirm_hits ({self.confirm_hits}) cannot exceed confirm_window "
                             f"({self.confirm_window})")
        if self.min_box_area > self.max_box_area:
            raise ValueError(f"min_box_area ({self.min_box_area}) cannot exceed max_box_area "
                             f"({self.max_box_area})")
        return self


class RecordingSettings(Section):
    """What a clip covers and where it is written."""

    enabled: bool = setting(True, "Write clips for events. Off still sends event messages.")
    pre_roll_s: float = setting(5.0, "Video kept before the first confirmed detection.", unit="s",
                                ge=0, le=60)
    post_roll_s: float = setting(5.0, "The event ends this long after its last confirmation.",
                                 unit="s", ge=0, le=300)
    max_clip_s: float = setting(60.0, "A longer event is split into parts of at most this "
                                "length, sharing the event id.", unit="s", ge=5, le=3600)
    on_demand_max_s: float = setting(
        60.0, "Longest clip the `record` direct method may ask for (the last N seconds). The "
        "ring buffer holds this much of the camera's video in memory (about bitrate x seconds: "
        "30 MB at 4 Mbit/s for 60 s), so raise it with care.", unit="s", gt=0, le=600)
    outbox_dir: Path = setting(
        Path("outbox"), "Folder shared with the uploader; finished clips appear here "
        "atomically. A relative path is under the module's --data-dir, so the camera and the "
        "uploader meet only where both are given one folder (the deployment and "
        "`graffiti-edge up` do).", restart=True,
    )
    sync_interval_s: float = setting(
        1.0, "While an event runs, its video and detections are appended to "
        "<data-dir>/recordings/ and flushed to the disk (fsync) this often: a crash or a power "
        "cut loses at most about this much before it, and the next start makes a clip of the "
        "rest. Shorter costs more disk flushes.", unit="s", gt=0, le=10)


class MetricsSettings(Section):
    """The Prometheus endpoint (``GET /metrics``) that the IoT Edge metrics collector scrapes."""

    enabled: bool = setting(True, "Serve the camera's metrics, labelled with its camera and "
                            "train ids.", restart=True)
    host: str = setting("0.0.0.0", "Address to listen on.", restart=True, min_length=1,
                        max_length=253)
    port: int = setting(9600, "TCP port: the collector scrapes "
                        "http://camera_module:9600/metrics. A port that is taken is logged and "
                        "reported; the camera goes on without metrics.", restart=True, ge=1,
                        le=65535)


class CameraSettings(Section):
    """Everything the camera module reads from its twin."""

    identity: IdentitySettings = section(IdentitySettings, "Train and camera names.")
    stream: StreamSettings = section(StreamSettings, "Video source.")
    sampling: SamplingSettings = section(SamplingSettings, "Sampling and the detector.")
    trigger: TriggerSettings = section(TriggerSettings, "Event trigger thresholds.")
    recording: RecordingSettings = section(RecordingSettings, "Clip recording.")
    metrics: MetricsSettings = section(MetricsSettings, "Prometheus metrics.")
    logging: LoggingSettings = section(LoggingSettings, "Log output.")
