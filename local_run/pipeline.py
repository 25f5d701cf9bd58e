"""The whole product on one machine: Azurite, a simulated RTSP camera and the three modules.

``graffiti-edge demo``, the end-to-end test and ``bench/e2e.py`` all run this, so what the
test proves is what a new user sees. Each module is a real process in local mode with a YAML
twin file written for the run: ``config/<module>.yaml`` with the run's folders and ports
merged over it. The camera module's URL decides whether a camera is simulated: a loopback
``rtsp://`` URL gets the sample video played there in a loop; any other URL is a real camera
and is left alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from azure.storage.blob import BlobServiceClient, ContainerClient

from config.camera import CameraSettings
from config.layers import merge
from config.uploader import UploaderSettings
from contracts.messages import ClipUploaded, ClipWritten, EventEnded, EventStarted
from contracts.outputs import Output
from infra.durable import write_atomic
from local_run.azurite import Azurite
from local_run.outputs import OutputLine, Sent, of_type, read_lines, typed
from local_run.processes import free_port, port_is_free
from local_run.rtsp_camera import RtspServer
from local_run.supervisor import MODULE_ORDER, ModuleProcess, Supervisor, shared_outbox

# Blob Storage on IoT Edge listens here on a train; Azurite takes the port when it is free.
BLOB_ON_EDGE_PORT = 11002
LOOPBACK = {"127.0.0.1", "localhost"}


@dataclass
class PipelineSpec:
    """What to run and where. Everything the run writes goes under ``root``."""

    root: Path
    config_dir: Path = Path("config")
    video: Path | None = None  # played by the simulated camera (when the camera URL is local)
    start_delay_s: float = 0.0  # the video's first pass starts this long after the camera
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-module twin
    azurite_port: int | None = None  # None: Blob on Edge's port if free, else any
    detector_port: int | None = None  # None: the detector twin's server.port
    camera_port: int | None = None  # None: the port of the camera twin's URL


def read_twin(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def write_twin(path: Path, doc: dict[str, Any]) -> None:
    """Atomically, so the module's file watcher never reads half a file."""
    write_atomic(path, "# Written by graffiti-edge for this run; edit it to change settings "
                 "live.\n" + yaml.safe_dump(doc, sort_keys=False))


class Pipeline:
    """Start with :meth:`start`, end with :meth:`stop` (in a ``finally``)."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.root = spec.root.resolve()
        self.twins_dir = self.root / "twins"
        self.outbox = shared_outbox(self.root)
        port = spec.azurite_port
        if port is None:
            port = BLOB_ON_EDGE_PORT if port_is_free(BLOB_ON_EDGE_PORT) else free_port()
        self.azurite = Azurite(self.root / "azurite", port=port)
        self.docs = self._twin_docs()
        # What the uploader makes of its twin: where the clips go and how to speak to it.
        self.upload = UploaderSettings.model_validate(self.docs["uploader"]).upload
        self.camera = self._simulated_camera()
        self.supervisor = Supervisor(list(MODULE_ORDER), config_dir=self.twins_dir,
                                     data_root=self.root,
                                     env={"UPLOADER_UPLOAD__CONNECTION_STRING":
                                          self.azurite.connection_string})
        self.epoch: float | None = None

    # -- configuration ----------------------------------------------------------------------

    @property
    def camera_url(self) -> str:
        return str(self.docs["camera"]["stream"]["detect_url"])

    @property
    def detector_port(self) -> int:
        return int(self.docs["detector"]["server"]["port"])

    @property
    def container_name(self) -> str:
        return self.upload.container

    def _twin_docs(self) -> dict[str, dict[str, Any]]:
        """``config/<module>.yaml`` with this run's folders and ports, then the overrides."""
        base = {m: read_twin(self.spec.config_dir / f"{m}.yaml") for m in MODULE_ORDER}
        url = base["camera"].get("stream", {}).get("detect_url",
                                                   CameraSettings().stream.detect_url)
        parts = urlsplit(url)
        if parts.scheme == "rtsp" and parts.hostname in LOOPBACK and self.spec.camera_port:
            url = parts._replace(netloc=f"127.0.0.1:{self.spec.camera_port}").geturl()
        detector_port = self.spec.detector_port or int(
            base["detector"].get("server", {}).get("port", 8080))
        run = {
            "camera": {"stream": {"detect_url": url},
                       "sampling": {"detector_url": f"http://127.0.0.1:{detector_port}"},
                       "recording": {"outbox_dir": str(self.outbox)}},
            "detector": {"server": {"port": detector_port},
                         "model_repository": {"dir": str(self.root / "models")},
                         "inference": {"cache_dir": str(self.root / "ov_cache")}},
            "uploader": {"outbox": {"dir": str(self.outbox)}},
        }
        return {m: merge(merge(base[m], run[m]), self.spec.overrides.get(m, {}))
                for m in MODULE_ORDER}

    def _simulated_camera(self) -> RtspServer | None:
        """The camera to play the video on the twin's URL, or None when that URL is a real
        camera: not on loopback, or a server already listening there (for example
        ``graffiti-edge simulate-camera`` started by hand)."""
        parts = urlsplit(self.camera_url)
        if self.spec.video is None or parts.scheme != "rtsp" or parts.hostname not in LOOPBACK:
            return None
        port = parts.port or 554
        if not port_is_free(port):
            return None
        return RtspServer(self.root / "camera", loop=self.spec.video, port=port,
                          mount=parts.path or "/")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        """Azurite, the camera, then the modules; returns when every module has reported."""
        self.twins_dir.mkdir(parents=True, exist_ok=True)
        for name, doc in self.docs.items():
            write_twin(self.twin_path(name), doc)
        on_step(f"Azurite (Blob Storage on IoT Edge stand-in) on 127.0.0.1:{self.azurite.port}")
        self.azurite.start()
        if self.camera is not None:
            self.epoch = time.time() + self.spec.start_delay_s
            self.camera.epoch = self.epoch
            on_step(f"simulated camera {self.camera.url} playing {self.spec.video} in a loop")
            self.camera.start()
        else:
            on_step(f"camera {self.camera_url} (not simulated: a real camera)")
        on_step("modules " + ", ".join(MODULE_ORDER) + f" (logs in {self.root / 'logs'})")
        self.supervisor.start()
        self.supervisor.wait_ready(120)

    def stop(self) -> dict[str, int]:
        """Every module, then the camera and Azurite: nothing left running or listening."""
        try:
            codes = self.supervisor.stop()
        finally:
            if self.camera is not None:
                self.camera.stop()
            self.azurite.stop()
        return codes

    # -- looking at it ----------------------------------------------------------------------

    def module(self, name: str) -> ModuleProcess:
        return self.supervisor.module(name)

    def twin_path(self, name: str) -> Path:
        return self.twins_dir / f"{name}.yaml"

    def patch_twin(self, name: str, patch: dict[str, Any]) -> None:
        """Change a module's desired properties the way an operator edits its twin file."""
        self.docs[name] = merge(self.docs[name], patch)
        write_twin(self.twin_path(name), self.docs[name])

    def messages(self, name: str, output: str) -> list[OutputLine]:
        """Every message a module has sent on ``output`` so far, as local mode wrote it."""
        return read_lines(self.root / name / "outputs" / f"{output}.jsonl")

    def sent(self, name: str, output: str) -> list[Sent]:
        """:meth:`messages` as contract models, each with when it was sent."""
        return typed(self.messages(name, output))

    def clip_stems(self) -> tuple[set[str], set[str]]:
        """(clips the camera wrote, clips the uploader put in blob storage), by stem."""
        written = {m.stem for m in of_type(self.sent("camera", Output.EVENTS), ClipWritten)}
        uploaded = of_type(self.sent("uploader", Output.CLIPS), ClipUploaded)
        return written, {m.stem for m in uploaded}

    def settled(self) -> bool:
        """Nothing of the run still on its way: every event has ended, every part of it has
        been written as a clip (an event ends before its clip is written) and every clip the
        camera wrote is in blob storage."""
        events = self.sent("camera", Output.EVENTS)
        started = {m.event_id for m in of_type(events, EventStarted)}
        parts = {m.event_id: m.parts for m in of_type(events, EventEnded)}
        clips = Counter(m.event_id for m in of_type(events, ClipWritten))
        recording = self.docs["camera"].get("recording", {}).get("enabled", True)
        all_written = not recording or all(clips[e] >= n for e, n in parts.items())
        written, uploaded = self.clip_stems()
        return started <= parts.keys() and all_written and written <= uploaded

    def reported(self, name: str) -> dict[str, Any]:
        return self.module(name).reported()

    def container(self) -> ContainerClient:
        """The clips' container in Azurite, spoken to as Blob Storage on IoT Edge is."""
        service = BlobServiceClient.from_connection_string(self.azurite.connection_string,
                                                           api_version=self.upload.api_version)
        return service.get_container_client(self.container_name)
