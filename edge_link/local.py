"""The local stand-in for IoT Edge: a watched YAML twin, JSON-lines outputs, file methods.

Editors save files in several steps (truncate, write, rename), so file events are debounced
and the file is read only once it has been quiet; a file that cannot be a settings file (not
found, a link, a folder, a FIFO, not UTF-8, too large, not YAML, not a mapping) is reported
and the last good settings stay: it is never taken as an empty twin. The first document read
is the full desired document (as a twin read at connect); each later edit is turned into the
merge patch between the last document *applied* and the new one and goes through the same
patch path as a twin patch, so after a refused edit the next one carries everything the file
now says, removals included.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from config.errors import SettingsRejected
from config.layers import Doc, diff, load_yaml_file
from edge_link.base import EdgeLink, Identity, LinkHandlers, encode_body
from edge_link.reported import apply_reported, fit_reported
from infra.durable import append_synced, write_atomic
from infra.logs import event, event_with_traceback

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON so that readers see the old or the new file, never half of one."""
    write_atomic(path, json.dumps(doc, indent=2, default=str))


class _Watch(FileSystemEventHandler):
    """Calls ``callback(path)`` for files created, changed or moved into a folder."""

    def __init__(self, callback: Callable[[Path], None]) -> None:
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved",
                                                          "closed"):
            return
        target = getattr(event, "dest_path", "") or event.src_path
        self._callback(Path(os.fsdecode(target)))


class LocalLink(EdgeLink):
    """IoT Edge semantics on a laptop or in tests, with no hub and no runtime."""

    kind = "local"

    def __init__(self, module_id: str, twin_file: Path | None, data_dir: Path, *,
                 device_id: str, debounce_s: float = 0.3) -> None:
        self.identity = Identity(device_id=device_id, module_id=module_id)
        # The folder is resolved, the file itself is not: a link there is refused, not followed.
        self.twin_file = twin_file.parent.resolve() / twin_file.name if twin_file else None
        self.data_dir = data_dir
        self.outputs_dir = data_dir / "outputs"
        self.reported_file = data_dir / "reported.json"
        self.requests_dir = data_dir / "methods" / "requests"
        self.responses_dir = data_dir / "methods" / "responses"
        self._debounce_s = debounce_s
        self._handlers: LinkHandlers | None = None
        self._observer = Observer()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        # The last document applied; None until one has been (then the next read is a full one).
        self._doc: Doc | None = None
        self._refused = False
        self._version = 0
        self._reported: dict[str, Any] = {}

    def start(self, handlers: LinkHandlers) -> None:
        self._handlers = handlers
        for folder in (self.outputs_dir, self.requests_dir, self.responses_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for stale in self.requests_dir.glob("*.json"):
            stale.unlink(missing_ok=True)
        if self.twin_file is not None:
            self._observer.schedule(_Watch(self._file_event), str(self.twin_file.parent))
        self._observer.schedule(_Watch(self._request_event), str(self.requests_dir))
        self._observer.start()
        if self.twin_file is None:
            handlers.on_twin({})
            return
        self._reload()

    def report(self, patch: dict[str, Any]) -> None:
        with self._lock:
            fitted, _ = fit_reported(self._reported, patch)
            self._reported = apply_reported(self._reported, fitted)
            write_json_atomic(self.reported_file, self._reported)

    def send(self, output: str, msg_type: str, body: dict[str, Any],
             message_id: str | None = None) -> None:
        encode_body(output, body)
        line = json.dumps({"ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           "output": output, "type": msg_type, "messageId": message_id,
                           "body": body}, default=str)
        with self._lock:
            append_synced(self.outputs_dir / f"{output}.jsonl", (line + "\n").encode("utf-8"))
        event(log, logging.INFO, "output.sent", output=output, type=msg_type)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=5)

    def _file_event(self, path: Path) -> None:
        if self.twin_file is None or path.parent.resolve() / path.name != self.twin_file:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce_s, self._reload)
            self._timer.daemon = True
            self._timer.start()

    def _read(self) -> Doc | None:
        assert self.twin_file is not None and self._handlers is not None
        try:
            doc, _ = load_yaml_file(self.twin_file)
        except SettingsRejected as exc:
            self._refused = True
            self._handlers.on_source_error(exc.errors)
            return None
        return doc

    def _reload(self) -> None:
        """Read the file and hand it on: whole the first time, as a patch afterwards. One at a
        time: a debounce timer can fire while the previous reload still runs."""
        try:
            with self._reload_lock:
                self._hand_on()
        except Exception as exc:  # noqa: BLE001 - a reload must never die silently
            event_with_traceback(log, logging.ERROR, "local_twin.reload_failed", exc,
                                 file=self.twin_file)

    def _hand_on(self) -> None:
        assert self._handlers is not None
        doc = self._read()
        if doc is None:
            return
        if self._doc is None:
            self._version += 1
            self._doc, self._refused = doc, False
            self._handlers.on_twin({**doc, "$version": self._version})
            return
        patch = diff(self._doc, doc)
        if not patch and not self._refused:
            return
        self._version += 1
        event(log, logging.INFO, "local_twin.changed", file=self.twin_file, version=self._version)
        if self._handlers.on_patch({**patch, "$version": self._version}):
            self._doc, self._refused = doc, False
        else:
            self._refused = True

    def _request_event(self, path: Path) -> None:
        if path.suffix != ".json" or path.parent != self.requests_dir or not path.exists():
            return
        assert self._handlers is not None
        try:
            request = json.loads(path.read_text())
            name, payload = request["method"], request.get("payload")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            status, result = 400, {"error": f"unreadable method request: {exc}"}
        else:
            try:
                status, result = self._handlers.on_method(name, payload)
            except Exception as exc:
                log.exception("link.method_failed method=%s", name)
                status, result = 500, {"error": f"{type(exc).__name__}: {exc}"}
        path.unlink(missing_ok=True)
        write_json_atomic(self.responses_dir / path.name, {"status": status, "payload": result})


def invoke_local_method(data_dir: Path, method: str, payload: Any,
                        timeout_s: float = 30.0) -> tuple[int, Any]:
    """Call a direct method on a locally running module through its methods folder."""
    requests_dir = data_dir / "methods" / "requests"
    responses_dir = data_dir / "methods" / "responses"
    if not requests_dir.is_dir():
        raise FileNotFoundError(f"no running module uses {data_dir} (no {requests_dir})")
    rid = uuid.uuid4().hex
    write_json_atomic(requests_dir / f"{rid}.json", {"method": method, "payload": payload})
    response = responses_dir / f"{rid}.json"
    deadline = time.monotonic() + timeout_s
    while not response.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not response.exists():
        (requests_dir / f"{rid}.json").unlink(missing_ok=True)
        raise TimeoutError(f"module at {data_dir} did not answer {method!r} in {timeout_s} s")
    doc = json.loads(response.read_text())
    response.unlink(missing_ok=True)
    return int(doc["status"]), doc.get("payload")
