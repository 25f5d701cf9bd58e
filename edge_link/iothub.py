"""The link to edgeHub (or IoT Hub) through azure-iot-device 2.x.

One worker thread owns every outbound call, and it is the only one that connects: the client
is made with the SDK's own reconnect and auto-connect off (:data:`CLIENT_OPTIONS`), so every
connection is one the worker made, and each is followed by a full read of the twin, because
desired patches sent while the module was away are not replayed. A connection-state callback
also asks for a full read, whatever the client's ``connected`` flag says by the time the
callback runs (it runs on another thread, possibly after the connection came back, which is
how a module could once miss the twin changed during an outage). The request is cleared
before the read and set again if the read fails, so a change that lands during a read is never
lost either.

Every call into the SDK has a deadline (:meth:`IoTHubLink._call`). The SDK waits for ever for
the answer to a twin read or a reported patch, and an answer lost with the connection (the
train enters a tunnel just after the request left) never comes: the worker would then wait
behind it for good, and never connect, read the twin or send anything again. A call that gets
no answer in time replaces the client with a new one, which also makes every subscription
again: the SDK never subscribes again on a connection it believes it subscribed on before, and
an edgeHub restarted without its store forgets them, after which no twin answer, desired patch
or direct method would ever arrive. A message whose acknowledgement was lost that way is sent
again; its stable message id lets a consumer drop the repeat.

Messages wait in a durable queue (:mod:`edge_link.outbound`, one file per message under the
module's data folder), written before :meth:`IoTHubLink.send` returns and removed only once the
hub accepted the message: a module killed while offline sends them after its restart.

Outputs are sent before reported properties, and reported patches are fitted to IoT Hub's
limits (:mod:`edge_link.reported`); a section the hub refuses anyway is replaced by a note
saying so. A report can never hold back a detection.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from azure.iot.device import IoTHubModuleClient, Message, MethodResponse
from azure.iot.device.exceptions import ServiceError

from config.layers import strip_metadata
from edge_link.base import HUB_ID, EdgeLink, Identity, LinkHandlers, encode_body
from edge_link.outbound import OutboundQueue, Queued
from edge_link.reported import (
    apply_reported,
    fit_reported,
    merge_reported,
    not_reported,
    size_of,
)
from infra.backoff import Backoff
from infra.logs import event, event_with_traceback, excerpt, redact
from infra.supervision import stop_thread

log = logging.getLogger(__name__)

ClientFactory = Callable[[], IoTHubModuleClient]
T = TypeVar("T")

#: How every client is made: the link's worker alone connects (see the module docstring), and
#: reads the twin itself after each connection, rather than the SDK turning a full read into a
#: "patch" that cannot remove a key.
CLIENT_OPTIONS: dict[str, Any] = {"auto_connect": False, "connection_retry": False,
                                  "ensure_desired_properties": False}
_SHUTDOWN_WAIT_S = 5.0
# Connecting includes TLS and authentication against an edgeHub that may be busy starting.
_CONNECT_TIMEOUT_S = 30.0
# The slowest uplink a message deadline allows for (GPRS-like, 8 kB/s): a 256 KB message
# gets 32 s before its acknowledgement counts as lost.
_SLOWEST_UPLINK_BPS = 8000
#: The outbound queue's bounds: 1000 messages, or 256 of the largest (256 KB). Constants, not
#: settings: the link is made before any settings are known (the twin comes through it).
MAX_QUEUED = 1000
MAX_QUEUED_BYTES = 64 * 1024 * 1024


class _NoAnswer(TimeoutError):
    """An SDK call that got no answer in time: the client is replaced."""


def _refused_by_hub(exc: BaseException) -> bool:
    """Whether the hub answered with an error status (the sync client wraps the SDK's
    ServiceError in a ClientError), as opposed to the connection failing."""
    return isinstance(exc, ServiceError) or isinstance(exc.__cause__, ServiceError)


def hub_message_id(message_id: str | None) -> str | None:
    """A stable message id as IoT Hub accepts it: characters outside its rule are written as
    ``%XX`` (so ``clip.uploaded/ev/1`` goes as ``clip.uploaded%2Fev%2F1``), and an id that
    would still be over 128 characters goes as its SHA-256 (stable, so still de-duplicable)."""
    if message_id is None or HUB_ID.fullmatch(message_id):
        return message_id
    encoded = "".join(c if HUB_ID.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode())
                      for c in message_id)
    if len(encoded) <= 128:
        return encoded
    return hashlib.sha256(message_id.encode()).hexdigest()


class IoTHubLink(EdgeLink):
    """A module client that survives being offline at start and at any time after."""

    kind = "iothub"

    def __init__(self, factory: ClientFactory, identity: Identity, *, queue_dir: Path,
                 max_queued: int = MAX_QUEUED, max_queued_bytes: int = MAX_QUEUED_BYTES,
                 retry_initial_s: float = 1.0, retry_max_s: float = 60.0,
                 call_timeout_s: float = 10.0) -> None:
        self.identity = identity
        self._factory = factory
        self._client: IoTHubModuleClient | None = None
        self._handlers: LinkHandlers | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reported: dict[str, Any] = {}
        # The reported properties as the hub holds them (read with every twin), for fitting.
        self._held: dict[str, Any] = {}
        self._queue = OutboundQueue(queue_dir, max_count=max_queued, max_bytes=max_queued_bytes)
        self._call_timeout_s = call_timeout_s
        self._twin_due = True
        self._subscribed = False
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._worker = threading.Thread(target=self._run, name="iothub-link", daemon=True)

    def start(self, handlers: LinkHandlers) -> None:
        self._handlers = handlers
        self._client = self._new_client()
        self._worker.start()

    def report(self, patch: dict[str, Any]) -> None:
        with self._lock:
            self._reported = merge_reported(self._reported, patch)
        self._wake.set()

    def send(self, output: str, msg_type: str, body: dict[str, Any],
             message_id: str | None = None) -> None:
        self._queue.put(output, msg_type, message_id, encode_body(output, body))
        self._wake.set()

    def status(self) -> Mapping[str, Any]:
        return {"link": self._queue.status()}

    def stop(self) -> None:
        stop_thread(self._worker, self._stop, self._wake)
        self._close()

    def _new_client(self) -> IoTHubModuleClient:
        client = self._factory()
        client.on_connection_state_change = self._on_state_change
        self._subscribed = False
        return client

    def _close(self) -> None:
        """Shut the client down, waiting a few seconds at most: a call stuck in it is left to
        its thread, which is all it holds."""
        if self._client is not None:
            closing = threading.Thread(target=_shutdown, args=(self._client,),
                                       name="iothub-old-client", daemon=True)
            closing.start()
            closing.join(_SHUTDOWN_WAIT_S)

    def _replace_client(self, why: str) -> None:
        """A new client, which subscribes afresh on its first connection."""
        self._close()
        self._client = self._new_client()
        self._twin_due = True
        event(log, logging.WARNING, "link.client_replaced", reason=why)

    def _call(self, what: str, fn: Callable[..., T], *args: Any,
              timeout_s: float | None = None) -> T:
        """``fn(*args)``, or :class:`_NoAnswer` after the deadline. The call runs on a daemon
        thread of its own: it cannot be cancelled, and one stuck for good (its client is then
        replaced) must not keep the process from exiting."""
        timeout_s = timeout_s or self._call_timeout_s
        result: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                result["value"] = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                result["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="iothub-call", daemon=True).start()
        if not done.wait(timeout_s):
            raise _NoAnswer(f"no answer to {what} within {timeout_s} s")
        if "error" in result:
            raise result["error"]
        return result["value"]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._step()
                self._backoff.reset()
            except Exception as exc:
                if isinstance(exc, _NoAnswer):
                    self._replace_client(str(exc))
                delay = self._backoff.next()
                event(log, logging.WARNING, "link.offline", error=redact(str(exc)) or type(exc),
                      retry_in_s=round(delay, 1))
                self._stop.wait(delay)
                continue
            self._wake.wait(timeout=5)

    def _step(self) -> None:
        """Connect if need be, read the twin if asked, then send outputs, then reports."""
        assert self._client is not None and self._handlers is not None
        if not self._client.connected:
            self._call("connecting", self._client.connect, timeout_s=_CONNECT_TIMEOUT_S)
            self._twin_due = True
            event(log, logging.INFO, "link.connected", kind=self.kind)
        if not self._subscribed:
            self._call("subscribing", self._subscribe, self._client, timeout_s=_CONNECT_TIMEOUT_S)
            self._subscribed = True
        if self._twin_due:
            self._twin_due = False
            try:
                twin = self._call("a twin read", self._client.get_twin)
            except BaseException:
                self._twin_due = True
                raise
            self._take_twin(twin)
        self._send_messages()
        self._send_reported()

    def _take_twin(self, twin: dict[str, Any]) -> None:
        assert self._handlers is not None
        reported = twin.get("reported")
        self._held = strip_metadata(reported) if isinstance(reported, dict) else {}
        try:
            self._handlers.on_twin(twin.get("desired") or {})
        except Exception as exc:  # noqa: BLE001 - a settings bug must not look like a hub outage
            event_with_traceback(log, logging.ERROR, "link.twin_handler_failed", exc)

    def _subscribe(self, client: IoTHubModuleClient) -> None:
        """Attach the receive handlers. The SDK subscribes as each is set, which fails while
        offline, so this runs only once connected (and again if it failed half-way)."""
        client.on_twin_desired_properties_patch_received = self._on_patch
        client.on_method_request_received = self._on_method

    def _send_messages(self) -> None:
        assert self._client is not None
        while (entry := self._queue.peek()) is not None:
            # A slow uplink must not look like a lost answer: a deadline for the message's size.
            deadline = max(self._call_timeout_s, len(entry.data) / _SLOWEST_UPLINK_BPS)
            self._call(f"a message to output {entry.output!r}",
                       self._client.send_message_to_output, _hub_message(entry), entry.output,
                       timeout_s=deadline)
            self._queue.done(entry)

    def _send_reported(self) -> None:
        """Send the pending reported patch, fitted to the hub's limits. One the hub refuses
        anyway goes again section by section, and a section it still refuses is replaced by
        a note; only a connection failure keeps the patch for the next attempt."""
        assert self._client is not None
        with self._lock:
            patch, self._reported = self._reported, {}
        if not patch:
            return
        fitted, _ = fit_reported(self._held, patch)
        try:
            self._call("a reported patch", self._client.patch_twin_reported_properties, fitted)
        except Exception as exc:
            if not _refused_by_hub(exc):
                self._keep_for_later(patch)
                raise
            self._send_by_section(fitted, exc)
        else:
            self._held = apply_reported(self._held, fitted)

    def _send_by_section(self, fitted: dict[str, Any], refusal: BaseException) -> None:
        assert self._client is not None
        names = list(fitted)
        for index, name in enumerate(names):
            note = not_reported(self._held, name, f"refused by IoT Hub: "
                                f"{_why(refusal)}", size_of(fitted[name]))
            for attempt in (fitted[name], note):
                try:
                    self._call("a reported patch", self._client.patch_twin_reported_properties,
                               {name: attempt})
                except Exception as exc:
                    if not _refused_by_hub(exc):
                        self._keep_for_later({n: fitted[n] for n in names[index:]})
                        raise
                    refusal = exc
                    continue
                self._held = apply_reported(self._held, {name: attempt})
                if attempt is note:
                    event(log, logging.ERROR, "link.report_refused", section=name,
                          error=_why(refusal), action="noted instead")
                break
            else:
                event(log, logging.ERROR, "link.report_refused", section=name,
                      error=_why(refusal), action="dropped")

    def _keep_for_later(self, patch: dict[str, Any]) -> None:
        with self._lock:
            self._reported = merge_reported(patch, self._reported)

    def _on_state_change(self) -> None:
        # Whatever the flag reads by now: a full read after any change is what makes sure.
        self._twin_due = True
        if self._client is not None and not self._client.connected:
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


def _hub_message(entry: Queued) -> Message:
    message = Message(entry.data, message_id=hub_message_id(entry.message_id),
                      content_encoding="utf-8", content_type="application/json")
    message.custom_properties["type"] = entry.msg_type
    return message


def _why(refusal: BaseException) -> str:
    cause = refusal.__cause__ if isinstance(refusal.__cause__, ServiceError) else refusal
    return excerpt(redact(str(cause)), 80)


def _shutdown(client: IoTHubModuleClient) -> None:
    try:
        client.shutdown()
    except Exception as exc:
        event(log, logging.WARNING, "link.shutdown_failed", error=redact(str(exc)))
