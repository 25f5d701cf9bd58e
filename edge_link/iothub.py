"""The link to edgeHub (or IoT Hub) through azure-iot-device 2.x.

One worker thread owns every outbound call: it connects (retrying for as long as it takes),
fetches the full desired twin after every (re)connect because patches sent while offline are
not replayed, and drains reported-property patches and output messages in order. Module
threads only enqueue, so an offline hub never blocks a camera or an upload.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from azure.iot.device import IoTHubModuleClient, Message, MethodResponse

from edge_link.base import EdgeLink, Identity, LinkHandlers, encode_body
from infra.backoff import Backoff
from infra.logs import event, redact

log = logging.getLogger(__name__)

ClientFactory = Callable[[], IoTHubModuleClient]


class IoTHubLink(EdgeLink):
    """A module client that survives being offline at start and at any time after."""

    kind = "iothub"

    def __init__(self, factory: ClientFactory, identity: Identity, *, max_queued: int = 1000,
                 retry_initial_s: float = 1.0, retry_max_s: float = 60.0,
                 twin_timeout_s: float = 10.0) -> None:
        self.identity = identity
        self._factory = factory
        self._client: IoTHubModuleClient | None = None
        self._handlers: LinkHandlers | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reported: dict[str, Any] = {}
        self._messages: collections.deque[tuple[str, Message]] = collections.deque()
        self._max_queued = max_queued
        self._twin_timeout_s = twin_timeout_s
        self._dropped = 0
        self._need_twin = True
        self._subscribed = False
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._worker = threading.Thread(target=self._run, name="iothub-link", daemon=True)

    def start(self, handlers: LinkHandlers) -> None:
        self._handlers = handlers
        self._client = self._factory()
        self._client.on_connection_state_change = self._on_state_change
        self._worker.start()

    def report(self, patch: dict[str, Any]) -> None:
        with self._lock:
            self._reported = merge_reported(self._reported, patch)
        self._wake.set()

    def send(self, output: str, msg_type: str, body: dict[str, Any]) -> None:
        message = Message(encode_body(output, body), content_encoding="utf-8",
                          content_type="application/json")
        message.custom_properties["type"] = msg_type
        with self._lock:
            if len(self._messages) >= self._max_queued:
                self._messages.popleft()
                self._dropped += 1
                event(log, logging.WARNING, "link.message_dropped", output=output,
                      dropped_total=self._dropped, reason="queue full while offline")
            self._messages.append((output, message))
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5)
        if self._client is not None:
            try:
                self._client.shutdown()
            except Exception as exc:
                event(log, logging.WARNING, "link.shutdown_failed", error=redact(str(exc)))

    def _run(self) -> None:
        assert self._client is not None and self._handlers is not None
        while not self._stop.is_set():
            try:
                if not self._client.connected:
                    self._client.connect()
                    event(log, logging.INFO, "link.connected", kind=self.kind)
                if not self._subscribed:
                    self._subscribe()
                if self._need_twin:
                    twin = self._get_twin()
                    self._need_twin = False
                    self._handlers.on_twin(twin.get("desired", {}))
                self._flush()
                self._backoff.reset()
            except Exception as exc:
                delay = self._backoff.next()
                event(log, logging.WARNING, "link.offline", error=redact(str(exc)) or type(exc),
                      retry_in_s=round(delay, 1))
                self._stop.wait(delay)
                continue
            self._wake.wait(timeout=5)
            self._wake.clear()

    def _get_twin(self) -> dict[str, Any]:
        """``get_twin`` with a deadline: the SDK waits forever for an answer that a connection
        drop can lose, which would freeze every report and message behind it."""
        assert self._client is not None
        result: dict[str, Any] = {}
        done = threading.Event()

        def fetch() -> None:
            try:
                result["twin"] = self._client.get_twin()  # type: ignore[union-attr]
            except Exception as exc:
                result["error"] = exc
            done.set()

        threading.Thread(target=fetch, name="iothub-get-twin", daemon=True).start()
        if not done.wait(self._twin_timeout_s):
            raise TimeoutError(f"no twin from the hub within {self._twin_timeout_s} s")
        if "error" in result:
            raise result["error"]
        return result["twin"]

    def _subscribe(self) -> None:
        """Attach the receive handlers. The SDK subscribes as each is set, which fails while
        offline, so this runs only once connected (and again if it failed half-way)."""
        assert self._client is not None
        self._client.on_twin_desired_properties_patch_received = self._on_patch
        self._client.on_method_request_received = self._on_method
        self._subscribed = True

    def _flush(self) -> None:
        assert self._client is not None
        with self._lock:
            patch, self._reported = self._reported, {}
        if patch:
            try:
                self._client.patch_twin_reported_properties(patch)
            except Exception:
                with self._lock:
                    self._reported = merge_reported(patch, self._reported)
                raise
        while True:
            with self._lock:
                if not self._messages:
                    return
                output, message = self._messages[0]
            self._client.send_message_to_output(message, output)
            with self._lock:
                self._messages.popleft()

    def _on_state_change(self) -> None:
        if self._client is not None and not self._client.connected:
            # Desired patches sent while we are away are not replayed: re-read the twin.
            self._need_twin = True
            event(log, logging.WARNING, "link.disconnected", kind=self.kind)
        self._wake.set()

    def _on_patch(self, patch: dict[str, Any]) -> None:
        assert self._handlers is not None
        try:
            self._handlers.on_patch(patch)
        except Exception:
            log.exception("link.patch_handler_failed")

    def _on_method(self, request: Any) -> None:
        assert self._handlers is not None and self._client is not None
        try:
            status, payload = self._handlers.on_method(request.name, request.payload)
        except Exception as exc:
            log.exception("link.method_failed method=%s", request.name)
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
        response = MethodResponse.create_from_method_request(request, status, payload)
        try:
            self._client.send_method_response(response)
        except Exception as exc:
            event(log, logging.WARNING, "link.method_response_failed", method=request.name,
                  error=redact(str(exc)))


def merge_reported(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Coalesce reported patches. A ``null`` must survive (it deletes the key in the hub), so
    unlike :func:`config.layers.merge` it is kept rather than applied."""
    result = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_reported(result[key], value)
        else:
            result[key] = value
    return result

