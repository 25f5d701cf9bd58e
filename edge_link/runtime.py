"""What every module does around its own job: settings, the link, methods, reports, signals.

The lifecycle is the same for the three modules (:func:`module_main`): parse the process
options, build a :class:`ModuleRuntime` and start it (settings loaded, a short wait for the
twin), build the module's :class:`ModuleService` objects, attach each (its direct methods, its
settings listener and its status go through the runtime, one way for every module), start
them, run until SIGTERM, stop them in reverse. Offline at start is normal on a train: after
``twin_wait_s`` the module goes on with its last good settings and applies the twin whenever
the link comes up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Generic, TypeVar

from config.errors import FieldError, SettingsRejected
from config.fields import Section
from config.layers import env_layer, load_yaml_file
from config.registry import ModuleSpec
from config.store import Listener, SettingsStore
from contracts.messages import Message, WorkerFailed
from contracts.outputs import MODULE_OUTPUTS
from edge_link.base import BadIdentity, EdgeLink, LinkHandlers
from edge_link.factory import open_link
from edge_link.status import StatusReporter
from infra.logs import apply_logging_settings, event, redact_value, setup_logging
from infra.supervision import WorkerFailure, Workers

log = logging.getLogger(__name__)

MethodHandler = Callable[[Any], tuple[int, Any]]
S = TypeVar("S", bound=Section)


def package_version() -> str:
    try:
        return version("graffiti-edge")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class RuntimeOptions:
    """Process options (not settings): where files are, how long to wait for the twin."""

    config_file: Path | None
    data_dir: Path
    twin_wait_s: float = 10.0
    cli: argparse.Namespace = field(default_factory=argparse.Namespace)


class ModuleService(Generic[S]):
    """A module's own job, started after the runtime and stopped before it.

    Override what applies: ``methods`` (direct methods by name), ``on_settings`` (called after
    every applied settings change), ``status`` (reported-property sections, asked for by the
    runtime's one status reporter; call ``runtime.status_changed()`` to have them sent soon)."""

    def methods(self) -> Mapping[str, MethodHandler]:
        return {}

    def on_settings(self, old: S, new: S, changed: tuple[str, ...]) -> None:
        """React to a settings change (the new settings are already in force)."""

    def status(self) -> Mapping[str, Any]:
        return {}

    def start(self) -> None:
        """Begin the job; raise (e.g. port taken) to stop the module with a clear line."""

    def stop(self) -> None:
        """Finish or hand over what is under way, quickly."""


class StopSignal:
    """Notes SIGTERM or SIGINT in a plain attribute, taking no lock.

    Python runs a signal handler in the main thread between two of its bytecodes, possibly
    while that thread holds the lock inside ``Event.wait``; a handler calling ``Event.set``
    would then wait on that lock for ever, and the module would hang until SIGKILLed."""

    def __init__(self) -> None:
        self.received: int | None = None

    @classmethod
    def install(cls) -> StopSignal:
        stop = cls()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop._note)
        return stop

    def _note(self, signum: int, _frame: object) -> None:
        self.received = signum


class ModuleRuntime(Generic[S]):
    """Settings in force, the link, direct methods and reported properties for one module."""

    def __init__(self, spec: ModuleSpec[S], options: RuntimeOptions, *,
                 environ: Mapping[str, str] | None = None, link: EdgeLink | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.spec = spec
        self.options = options
        self.link = link or open_link(f"{spec.name}_module", data_dir=options.data_dir,
                                      twin_file=options.config_file, environ=environ)
        file_layer: dict[str, Any] = {}
        if self.link.kind != "local" and options.config_file is not None:
            file_layer, _ = load_yaml_file(options.config_file)
        self.store: SettingsStore[S] = SettingsStore(
            spec.settings,
            file_layer=file_layer,
            env_layer=env_layer(spec.env_prefix, environ),
            file_source=str(options.config_file or "file"),
            last_good_path=options.data_dir / "state" / "settings.last_good.json",
            data_dir=options.data_dir.absolute(),
        )
        self._methods: dict[str, MethodHandler] = {"ping": self._ping}
        self.reporter = StatusReporter(self._report)
        self.workers = Workers(self._worker_failed)
        self.reporter.add(lambda: {"workers": self.workers.health()})
        self.reporter.add(self.link.status)
        self._first_twin = threading.Event()
        # Set by the first twin, or by a twin source that cannot give one (an unreadable file).
        self._twin_settled = threading.Event()
        self._twin_lock = threading.Lock()
        self._stopping = threading.Event()
        self._started_at = datetime.now(UTC)

    @property
    def settings(self) -> S:
        """The settings in force (immutable; read it again to see later changes)."""
        return self.store.current

    def attach(self, service: ModuleService[S]) -> None:
        """Wire a service in: its direct methods, its settings listener and its status."""
        for name, handler in service.methods().items():
            self.register_method(name, handler)
        self.subscribe(service.on_settings)
        self.reporter.add(service.status)

    def subscribe(self, listener: Listener[S]) -> None:
        """Be told ``(old, new, changed_paths)`` after every applied settings change."""
        self.store.subscribe(listener)

    def register_method(self, name: str, handler: MethodHandler) -> None:
        if name in self._methods:
            raise ValueError(f"direct method {name!r} is registered twice")
        self._methods[name] = handler

    def status_changed(self) -> None:
        """A service's status changed: report it soon rather than at the next interval."""
        self.reporter.poke()

    def start(self) -> None:
        """Connect (or not), apply the twin, and report what is in force."""
        self.store.subscribe(self._on_change)
        self.link.start(LinkHandlers(on_twin=self._on_twin, on_patch=self._on_patch,
                                     on_method=self._on_method,
                                     on_source_error=self._on_source_error))
        self._twin_settled.wait(self.options.twin_wait_s)
        with self._twin_lock:
            # Under the lock: a twin that arrives now must not be overridden by the fallback.
            if not self._first_twin.is_set():
                event(log, logging.WARNING, "settings.twin_unavailable",
                      waited_s=self.options.twin_wait_s, action="running on last good settings")
                self.store.restore_last_good()
                self._report_settings()
        self.store.mark_started()
        self._report({"module": {"name": self.spec.name, "version": package_version(),
                                     "link": self.link.kind,
                                     "startedAt": self._started_at.isoformat()}})
        event(log, logging.INFO, "module.started", link=self.link.kind,
              device=self.link.identity.device_id, module_id=self.link.identity.module_id)

    def send(self, message: Message) -> None:
        """Send a message to its output, stamped with this device and module.

        Only the outputs declared for this module in :mod:`contracts.outputs` are allowed, so
        the deployment's routes and the code cannot drift apart unnoticed."""
        output = message.OUTPUT
        if output not in MODULE_OUTPUTS[self.spec.name]:
            raise ValueError(f"{self.spec.name} module has no output {output.value!r}; declared: "
                             f"{sorted(o.value for o in MODULE_OUTPUTS[self.spec.name])}")
        stamped = message.model_copy(update={"device_id": self.link.identity.device_id,
                                             "module_id": self.link.identity.module_id})
        self.link.send(output, message.TYPE, redact_value(stamped.body()),
                       message_id=message.message_id())

    def run_until_signalled(self) -> int:
        """Block until SIGTERM or SIGINT (IoT Edge stops modules with SIGTERM): exit code 0;
        or until a worker keeps failing: exit code 1, so that IoT Edge restarts the module."""
        stop = StopSignal.install()
        while stop.received is None:
            if self.workers.fatal.is_set():
                event(log, logging.CRITICAL, "module.exiting", reason="a worker keeps failing",
                      workers=",".join(self.workers.not_running()))
                return 1
            time.sleep(0.2)
        event(log, logging.INFO, "module.signalled", signal=signal.Signals(stop.received).name)
        self._stopping.set()
        return 0

    def stop(self) -> None:
        self._stopping.set()
        self.workers.stop()
        self.reporter.stop()
        self.link.stop()
        event(log, logging.INFO, "module.stopped")

    def _worker_failed(self, failure: WorkerFailure) -> None:
        self.send(WorkerFailed(worker=failure.worker, error=failure.error,
                               failures=failure.failures, restarting=failure.restarting))
        self.status_changed()

    def _report(self, patch: dict[str, Any]) -> None:
        """Every reported patch leaves through here: one redaction for every link."""
        self.link.report(redact_value(patch))

    def _report_settings(self) -> None:
        self._report({"settings": self.store.report()})

    def _on_twin(self, desired: dict[str, Any]) -> None:
        with self._twin_lock:
            self.store.replace_twin(desired)
            self._first_twin.set()
        self._twin_settled.set()
        self._report_settings()

    def _on_patch(self, patch: dict[str, Any]) -> bool:
        accepted = self.store.apply_patch(patch).accepted
        self._report_settings()
        return accepted

    def _on_source_error(self, errors: list[FieldError]) -> None:
        self.store.record_rejection(errors)
        self._twin_settled.set()
        self._report_settings()

    def _on_change(self, old: Any, new: Any, changed: tuple[str, ...]) -> None:
        if any(p.startswith("logging.") for p in changed):
            apply_logging_settings(new.logging.level, new.logging.format)

    def _on_method(self, name: str, payload: Any) -> tuple[int, Any]:
        handler = self._methods.get(name)
        if handler is None:
            return 404, {"error": f"unknown method {name!r}; known: {sorted(self._methods)}"}
        event(log, logging.INFO, "method.called", method=name)
        return handler(payload)

    def _ping(self, payload: Any) -> tuple[int, Any]:
        uptime = (datetime.now(UTC) - self._started_at).total_seconds()
        return 200, {"module": self.spec.name, "version": package_version(),
                     "uptime_s": round(uptime, 1), "echo": payload}


def module_main(spec: ModuleSpec[S],
                build: Callable[[ModuleRuntime[S]], list[ModuleService[S]]],
                argv: Sequence[str] | None = None, *,
                add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """The shared entry point of the three modules (``python -m <module>``).

    ``add_arguments`` adds a module's own options; ``build`` finds them parsed in
    ``runtime.options.cli``."""
    name = spec.name
    prefix = spec.env_prefix
    parser = argparse.ArgumentParser(
        prog=f"{name}-module", description=spec.description,
        epilog=f"Settings come from defaults < --config YAML (on IoT Edge) < {prefix}<SECTION>__"
        "<FIELD> environment variables < the module twin. Locally (no IOTEDGE_* variables) the "
        "--config file stands in for the twin's desired properties and is watched for edits. "
        f"See `graffiti-edge config schema --module {name}` and docs/configuration.md.",
    )
    parser.add_argument("--config", type=Path, default=os.environ.get(f"{prefix}CONFIG"),
                        help=f"YAML settings / local twin file (env {prefix}CONFIG).")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get(f"{prefix}DATA_DIR", f"data/{name}")),
                        help="Folder for local outputs, reported properties and state "
                        f"(env {prefix}DATA_DIR; default data/{name}).")
    parser.add_argument("--twin-wait", type=float, default=10.0, metavar="SECONDS",
                        help="How long to wait for the twin at start before running on the "
                        "last good settings (default 10).")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(name)
    options = RuntimeOptions(config_file=args.config, data_dir=args.data_dir,
                             twin_wait_s=args.twin_wait, cli=args)
    runtime = _open_runtime(spec, options)
    if runtime is None:
        return 2
    settings = runtime.settings
    ids = {"device_id": runtime.link.identity.device_id}
    identity = getattr(settings, "identity", None)
    if identity is not None:
        ids |= {"train_id": identity.train_id, "camera_id": identity.camera_id}
    setup_logging(name, level=settings.logging.level, fmt=settings.logging.format, ids=ids)
    started: list[ModuleService[S]] = []
    try:
        for service in build(runtime):
            runtime.attach(service)
            service.start()
            started.append(service)
        runtime.reporter.start()
    except Exception as exc:
        # E.g. the port is taken: say so in one line and stop what did start.
        event(log, logging.ERROR, "module.start_failed", error=f"{type(exc).__name__}: {exc}")
        _stop_all(started, runtime)
        return 1
    try:
        code = runtime.run_until_signalled()
    finally:
        _stop_all(started, runtime)
    return code


def _open_runtime(spec: ModuleSpec[S], options: RuntimeOptions) -> ModuleRuntime[S] | None:
    """The runtime, started; None, once the log says why, when the settings at start or the
    device and module ids are refused."""
    try:
        runtime = ModuleRuntime(spec, options)
        runtime.start()
    except SettingsRejected as exc:
        for err in exc.errors:
            event(log, logging.ERROR, "settings.invalid_at_start", error=str(err))
        return None
    except BadIdentity as exc:
        event(log, logging.ERROR, "module.bad_identity", error=str(exc))
        return None
    return runtime


def _stop_all(services: list[ModuleService[S]], runtime: ModuleRuntime[S]) -> None:
    for service in reversed(services):
        try:
            service.stop()
        except Exception:
            log.exception("module.service_stop_failed service=%s", type(service).__name__)
    runtime.stop()

