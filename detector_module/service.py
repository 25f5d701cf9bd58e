"""The detector as a module service: model loading and reloading, the Web API, the twin.

The HTTP server runs on its own event loop thread and answers /healthz at once; the model
loads on a worker thread and /readyz turns 200 when it has been warmed up. Changes to the
`inference` settings reload the session on that worker and swap it in when it is ready, so
requests never wait for a compile and none is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from detector_module.adapters import AdapterError
from detector_module.api import Api
from detector_module.backends import BackendError, InferenceOptions
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, ModelSlot, load_model
from detector_module.events import DetectionEvents
from detector_module.metrics import Metrics
from detector_module.package import ModelPackage, PackageError, bundled_sample, load_package
from detector_module.updates.manager import ModelManager
from detector_module.updates.repository import ModelRepository
from edge_link.runtime import ModuleRuntime
from infra.logs import event

log = logging.getLogger(__name__)

MAX_WORKERS = 64  # the largest server.max_concurrent; threads start only when needed


class DetectorService:
    """Start: bind the API, then load the model in the background. Stop: the reverse."""

    def __init__(self, runtime: ModuleRuntime, *, model_path: Path | None = None,
                 port: int | None = None) -> None:
        self.runtime = runtime
        # An explicit --model wins at start; else the repository's active version (offline
        # boot, issue 5); else the bundled sample.
        self._explicit_model = model_path is not None
        self.model_path = model_path or bundled_sample()
        self.repository = ModelRepository(Path(runtime.settings.model_repository.dir))
        self._swap_lock = threading.Lock()
        self._repository_failed = False
        self._first_load = threading.Event()
        self.updates = ModelManager(runtime, self.repository, self._activate, self._serving,
                                    ready=self._first_load)
        self.slot = ModelSlot()
        self.metrics = Metrics()
        self.events = DetectionEvents(runtime.send_body, self.metrics)
        self._executor = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="detect")
        self._api = Api(lambda: runtime.settings, self.slot, self.events, self.metrics,
                        self._executor)
        self._port_override = port
        self.port: int | None = None
        self._package: ModelPackage | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._bind_error: BaseException | None = None
        self._reload_wanted = threading.Event()
        self._stopping = threading.Event()
        self._loader = threading.Thread(target=self._load_loop, name="model-loader",
                                        daemon=True)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        settings = self.runtime.settings.server
        port = settings.port if self._port_override is None else self._port_override
        self._server_thread = threading.Thread(target=self._serve, args=(settings.host, port),
                                               name="detector-api", daemon=True)
        self._server_thread.start()
        self._bound.wait()
        if self._bind_error is not None:
            raise self._bind_error
        self.runtime.subscribe(self._on_settings)
        self._reload_wanted.set()
        self._loader.start()
        self.updates.start()
        self.updates.request(self.runtime.settings.model)
        event(log, logging.INFO, "api.listening", host=settings.host, port=self.port)

    def stop(self) -> None:
        self._stopping.set()
        self._reload_wanted.set()
        self._first_load.set()
        self.updates.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._server_thread is not None:
            self._server_thread.join(timeout=10)
        if self._loader.is_alive():
            self._loader.join(timeout=30)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def wait_ready(self, timeout: float) -> bool:
        """True once a model serves (for tests and the benchmark)."""
        deadline = time.monotonic() + timeout
        while self.slot.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.slot.current is not None

    def _serve(self, host: str, port: int) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # In-flight requests get a few seconds to finish when IoT Edge stops the module.
        runner = web.AppRunner(self._api.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=5.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, port, reuse_address=True)
            loop.run_until_complete(site.start())
        except OSError as exc:
            self._bind_error = exc
            event(log, logging.ERROR, "api.bind_failed", host=host, port=port, error=str(exc))
            self._bound.set()
            loop.close()
            return
        server = site._server  # the bound socket tells the real port when 0 was asked
        self.port = server.sockets[0].getsockname()[1] if server is not None else port
        self._loop = loop
        self._bound.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    # -- model loading ------------------------------------------------------------------

    def _on_settings(self, old: Any, new: Any, changed: tuple[str, ...]) -> None:
        if any(path.startswith("model.") or path == "model" for path in changed):
            self.updates.request(new.model)
        elif any(path.startswith("model_repository.") for path in changed):
            self.updates.request(new.model, retry_failed=True)
        if any(path.startswith("inference.") for path in changed):
            event(log, logging.INFO, "inference.reload_requested",
                  changed=",".join(p for p in changed if p.startswith("inference.")))
            self._reload_wanted.set()

    def _load_loop(self) -> None:
        while True:
            self._reload_wanted.wait()
            if self._stopping.is_set():
                return
            self._reload_wanted.clear()
            with self._swap_lock:
                self._load()
            self._first_load.set()

    def _load(self) -> None:
        """Load (or reload) the model with the inference settings now in force."""
        options = InferenceOptions.from_settings(self.runtime.settings.inference)
        current = self.slot.current
        if current is not None and current.options == options:
            return
        try:
            if (self._package is None and not self._explicit_model
                    and self.slot.current is None and not self._repository_failed):
                self._package = self._repository_package()
            if self._package is None:
                if self.model_path is None:
                    raise PackageError("no model package: none given with --model and no "
                                       "bundled sample model in samples/models/")
                self._package = load_package(self.model_path)
            model = load_model(self._package, options)
        except (PackageError, BackendError, AdapterError, OSError) as exc:
            if (current is None and self._package is not None and not self._explicit_model
                    and not self._repository_failed and self._package.source != self.model_path):
                # The repository's active version does not load: boot the bundled sample.
                event(log, logging.ERROR, "model.repository_unusable", error=str(exc),
                      action="loading the bundled sample")
                self._repository_failed = True
                self._package = None
                self._load()
                return
            self.slot.fail(str(exc))
            event(log, logging.ERROR, "model.load_failed", source=self.model_path,
                  error=str(exc))
            self.runtime.report("inference", {"status": "failed", "error": str(exc)})
            return
        self.slot.swap(model)
        self._report_loaded(model)

    def _report_loaded(self, model: LoadedModel) -> dict[str, Any]:
        """Say in the reported properties which model serves, on which providers."""
        info = model.info()
        self.runtime.report("inference", {
            "status": "loaded", "model": {k: info[k] for k in ("name", "version", "format")},
            "providers": info["providers"], "device": info["device"],
            "precision": info["precision"], "numThreads": info["num_threads"],
            "fallbackReason": info["fallback_reason"], "loadedAt": info["loaded_at"]})
        return info

    # -- model updates (issue 5) --------------------------------------------------------

    def _repository_package(self) -> ModelPackage | None:
        """The repository's active version, read without any network (offline boot)."""
        active = self.repository.active()
        if active is None:
            return None
        try:
            package = replace(load_package(self.repository.path(*active)), name=active[0],
                              version=active[1])
        except (PackageError, OSError) as exc:
            event(log, logging.ERROR, "model.repository_unusable", model=active[0],
                  version=active[1], error=str(exc), action="loading the bundled sample")
            return None
        event(log, logging.INFO, "model.offline_boot", model=active[0], version=active[1])
        return package

    def _serving(self) -> tuple[str, str] | None:
        current = self.slot.current
        return (current.package.name, current.package.version) if current else None

    def _activate(self, path: Path, name: str, version: str) -> dict[str, Any]:
        """Load beside the serving model, warm up, sanity-check, then swap in atomically.

        Requests in flight keep their reference to the old model and finish on it; its
        session is freed when the last of them drops that reference."""
        with self._swap_lock:
            package = replace(load_package(path), name=name, version=version)
            options = InferenceOptions.from_settings(self.runtime.settings.inference)
            model = load_model(package, options)  # includes the warm-up inference
            sanity_check(model)
            self._package = package
            self.slot.swap(model)
        return self._report_loaded(model)


def sanity_check(model: LoadedModel) -> None:
    """Run a synthetic 640x480 scene through the full pipeline; raise if the output is off."""
    import numpy as np

    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([(x * 255 // 639), (y * 255 // 479), ((x + y) % 256)], -1).astype(np.uint8)
    image[160:320, 200:440] = (200, 40, 160)
    detections = model.detect(image, PostProcess(min_score=0.0))
    for det in detections:
        values = (det.score, *det.box)
        if not all(np.isfinite(v) and -0.01 <= v <= 1.01 for v in values):
            raise BackendError(f"sanity image gave an impossible detection: {det}")
    if not model.adapter.labels:
        raise BackendError("the model has no labels")
