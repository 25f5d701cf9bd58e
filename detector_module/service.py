"""The detector as a module service: model loading and reloading, the Web API, the twin.

The HTTP server runs on its own event loop thread and answers /healthz at once; the model
loads on a worker thread and /readyz turns 200 when it has been warmed up. Changes to the
`inference` settings reload the session on that worker and swap it in when it is ready, so
requests never wait for a compile and none is dropped.

Every thread (the API server, the model loader, the update manager) runs under
``runtime.workers``, so an unexpected exception is logged with its traceback, alerted and
the worker restarted, and /healthz names a worker that is not running. Every model is opened
through :meth:`DetectorService._checked_load`: first its trial in a child process
(:mod:`detector_module.trial`: time and memory limits, killed when no longer wanted), then
the same load in this process. What the repository says at boot is untrusted too: a bad
``active.json`` or a version that fails its trial boots the bundled sample instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from config.detector import DetectorSettings, ServerSettings
from detector_module.adapters import AdapterError
from detector_module.api import Api
from detector_module.backends import BackendError, InferenceOptions
from detector_module.customvision_api import CustomVisionApi
from detector_module.engine import LoadedModel, ModelSlot, load_model, sanity_check
from detector_module.events import DetectionEvents
from detector_module.metrics import Metrics
from detector_module.package import ModelPackage, PackageError, bundled_sample, load_package
from detector_module.trial import Cancelled, TrialCancelled, TrialLimits, trial
from detector_module.updates.manager import ModelManager
from detector_module.updates.repository import ModelRepository
from edge_link.runtime import ModuleRuntime, ModuleService
from infra.logs import event

log = logging.getLogger(__name__)

MAX_WORKERS = 64  # the largest server.max_concurrent; threads start only when needed
# What a model that cannot serve raises while it is read, opened or warmed up.
LOAD_ERRORS = (PackageError, BackendError, AdapterError, OSError)
# The inference settings a session is built with; the others (trial limits) need no reload.
SESSION_FIELDS = frozenset(f"inference.{f.name}" for f in fields(InferenceOptions))


class DetectorService(ModuleService[DetectorSettings]):
    """Start: bind the API, then load the model in the background. Stop: the reverse."""

    def __init__(self, runtime: ModuleRuntime[DetectorSettings], *,
                 model_path: Path | None = None, port: int | None = None) -> None:
        self.runtime = runtime
        self.model_path = model_path
        self.repository = ModelRepository(Path(runtime.settings.model_repository.dir))
        self._swap_lock = threading.Lock()
        self._first_load = threading.Event()
        self.updates = ModelManager(runtime, self.repository, self._activate, self._serving,
                                    ready=self._first_load)
        self.slot = ModelSlot()
        self.metrics = Metrics()
        self.events = DetectionEvents(runtime.send, self.metrics)
        self._executor = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="detect")
        self._api = Api(lambda: runtime.settings, self.slot, self.events, self.metrics,
                        self._executor, runtime.workers)
        self._api.mount(CustomVisionApi(self._api).routes())
        self._port_override = port
        self.port: int | None = None
        #: The reported ``inference`` section; replaced whole on every change.
        self._inference: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._bind_error: OSError | None = None
        self._reload_wanted = threading.Event()
        self._stopping = threading.Event()
        self._loader: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        settings = self.runtime.settings.server
        port = settings.port if self._port_override is None else self._port_override
        self._server_thread = self.runtime.workers.spawn(
            "detector-api", lambda: self._serve(settings, port))
        self._bound.wait()
        if self._bind_error is not None:
            raise self._bind_error
        self._reload_wanted.set()
        self._loader = self.runtime.workers.spawn("model-loader", self._load_loop)
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
        if self._loader is not None:
            self._loader.join(timeout=30)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        """The ``inference`` section (which model serves, where) and the update manager's
        ``model`` section, each once it has something to say."""
        sections = {"inference": dict(self._inference)} if self._inference else {}
        return sections | self.updates.status()

    def on_settings(self, old: DetectorSettings, new: DetectorSettings,
                    changed: tuple[str, ...]) -> None:
        if any(path.startswith("model.") or path == "model" for path in changed):
            self.updates.request(new.model)
        elif any(path.startswith("model_repository.") for path in changed):
            self.updates.request(new.model, retry_failed=True)
        if session := [path for path in changed if path in SESSION_FIELDS]:
            event(log, logging.INFO, "inference.reload_requested", changed=",".join(session))
            self._reload_wanted.set()

    def wait_ready(self, timeout: float) -> bool:
        """True once a model serves (for tests and the benchmark)."""
        deadline = time.monotonic() + timeout
        while self.slot.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.slot.current is not None

    def _serve(self, server: ServerSettings, port: int) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = self._api.runner(server)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, server.host, port, reuse_address=True)
            loop.run_until_complete(site.start())
        except OSError as exc:
            self._bind_error = exc
            event(log, logging.ERROR, "api.bind_failed", host=server.host, port=port,
                  error=str(exc))
            self._bound.set()
            loop.close()
            return
        # The bound address tells the real port when 0 (any free port) was asked for.
        self.port = runner.addresses[0][1]
        self._loop = loop
        self._bound.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            _finish_tasks(loop)
            loop.close()

    def _set_inference(self, section: dict[str, Any]) -> None:
        self._inference = section
        self.runtime.status_changed()

    # -- model loading ------------------------------------------------------------------

    def _load_loop(self) -> None:
        while self._reload_wanted.wait() and not self._stopping.is_set():
            with self._swap_lock:
                self._reload_wanted.clear()
                try:
                    self._load()
                except BaseException:
                    self._reload_wanted.set()  # the supervisor's restart tries again
                    raise
            self._first_load.set()

    def _load(self) -> None:
        """Load the first model, or reload the serving one with the inference settings now
        in force."""
        options = InferenceOptions.from_settings(self.runtime.settings.inference)
        current = self.slot.current
        if current is not None and current.options == options:
            return
        try:
            model = (self._boot(options) if current is None
                     else self._checked_load(current.package, options, self._stopping.is_set))
        except TrialCancelled:
            return
        except LOAD_ERRORS as exc:
            self.slot.fail(str(exc))
            event(log, logging.ERROR, "model.load_failed", error=str(exc))
            self._set_inference({"status": "failed", "error": str(exc)})
            return
        self.slot.swap(model)
        self._report_loaded(model)

    def _checked_load(self, package: ModelPackage, options: InferenceOptions,
                      cancelled: Cancelled) -> LoadedModel:
        """The one way a model is opened: its trial in a child process (time and memory
        limits), then the same load, warm-up and sanity check here."""
        limits = TrialLimits.from_settings(self.runtime.settings.inference)
        try:
            trial(package.source, options, limits, cancelled)
        except BackendError as exc:
            raise BackendError(f"model {package.name} {package.version} refused: "
                               f"{exc}") from None
        model = load_model(package, options)
        sanity_check(model)
        return model

    def _boot(self, options: InferenceOptions) -> LoadedModel:
        """The model to start with: ``--model`` if given, else the repository's active
        version (offline boot: no network needed), else the bundled sample, which also
        stands in when the repository's version does not load."""
        if self.model_path is None:
            package = self._repository_package()
            if package is not None:
                try:
                    return self._checked_load(package, options, self._stopping.is_set)
                except LOAD_ERRORS as exc:
                    event(log, logging.ERROR, "model.repository_unusable", model=package.name,
                          version=package.version, error=str(exc),
                          action="loading the bundled sample")
        source = self.model_path or bundled_sample()
        if source is None:
            raise PackageError("no model package: none given with --model and no bundled "
                               "sample model in samples/models/")
        return self._checked_load(load_package(source), options, self._stopping.is_set)

    def _repository_package(self) -> ModelPackage | None:
        """The repository's active version, read without any network; None when there is
        none or it is unusable (both reported)."""
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

    def _report_loaded(self, model: LoadedModel) -> dict[str, Any]:
        """Say in the reported properties which model serves, on which providers."""
        info = model.info()
        self._set_inference({
            "status": "loaded", "model": {k: info[k] for k in ("name", "version", "format")},
            "providers": info["providers"], "device": info["device"],
            "precision": info["precision"], "numThreads": info["num_threads"],
            "fallbackReason": info["fallback_reason"], "loadedAt": info["loaded_at"]})
        return info

    # -- model updates ------------------------------------------------------------------

    def _serving(self) -> tuple[str, str] | None:
        current = self.slot.current
        return (current.package.name, current.package.version) if current else None

    def _activate(self, path: Path, name: str, version: str,
                  cancelled: Cancelled) -> dict[str, Any]:
        """Load beside the serving model (trial, warm-up, sanity check), then swap it in
        atomically; TrialCancelled when a newer model is wanted meanwhile.

        Requests in flight keep their reference to the old model and finish on it; its
        session is freed when the last of them drops that reference."""
        with self._swap_lock:
            package = replace(load_package(path), name=name, version=version)
            options = InferenceOptions.from_settings(self.runtime.settings.inference)
            model = self._checked_load(package, options, cancelled)
            self.slot.swap(model)
        return self._report_loaded(model)


def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the server left (handlers of idle keep-alive connections) and let it end,
    so closing the loop destroys no pending task (asyncio would log each, over two lines)."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
