"""A test-side IoT Hub: answers the hub's MQTT topics so the real SDK runs end to end.

It holds one module twin, answers twin GETs and reported patches, pushes desired patches,
invokes direct methods and records the messages the module sends to its outputs. Like IoT
Hub, it refuses (status 400) a reported patch that would take the reported properties past
``reported_limit`` bytes (32 KB at the hub) or that has a key with '.', '$' or a space.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from config.layers import merge, strip_metadata


@dataclass
class OutputMessage:
    output: str
    properties: dict[str, str]
    body: Any


@dataclass
class HubResponder:
    port: int
    device_id: str
    module_id: str
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    reported_patches: list[dict[str, Any]] = field(default_factory=list)
    messages: list[OutputMessage] = field(default_factory=list)
    version: int = 1
    reported_limit: int = 32 * 1024
    refused_patches: int = 0
    # False: reported patches are taken but never answered, as when the answer is lost with
    # the connection.
    answer_reported: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._method_results: dict[str, tuple[int, Any]] = {}
        self._client = mqtt.Client(client_id=f"hub-{uuid.uuid4().hex[:8]}")
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._client.on_connect = lambda *a: self._connected.set()

    @property
    def prefix(self) -> str:
        return f"devices/{self.device_id}/modules/{self.module_id}"

    def connection_string(self, gateway: str = "127.0.0.1") -> str:
        return (f"HostName=testhub.azure-devices.net;DeviceId={self.device_id};"
                f"ModuleId={self.module_id};SharedAccessKey=dGVzdGtleXRlc3RrZXl0ZXN0a2V5;"
                f"GatewayHostName={gateway}")

    def start(self) -> None:
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("responder could not connect to mosquitto")
        for topic in ("$iothub/twin/GET/#", "$iothub/twin/PATCH/properties/reported/#",
                      "$iothub/methods/res/#", f"{self.prefix}/messages/events/#"):
            self._client.subscribe(topic, qos=1)
        time.sleep(0.2)

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def patch_desired(self, patch: dict[str, Any]) -> int:
        with self._lock:
            self.version += 1
            self.desired = merge(self.desired, strip_metadata(patch))
            body = {**patch, "$version": self.version}
        self._client.publish(f"$iothub/twin/PATCH/properties/desired/?$version={self.version}",
                             json.dumps(body), qos=1)
        return self.version

    def invoke_method(self, name: str, payload: Any, timeout_s: float = 15) -> tuple[int, Any]:
        rid = uuid.uuid4().hex[:8]
        self._client.publish(f"$iothub/methods/POST/{name}/?$rid={rid}", json.dumps(payload),
                             qos=1)
        self.wait_for(lambda: rid in self._method_results, timeout_s, f"method {name} answer")
        return self._method_results.pop(rid)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
                self._lock.wait(min(remaining, 0.2))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic, _, query = msg.topic.partition("?")
        params = dict(urllib.parse.parse_qsl(query))
        with self._lock:
            if topic.startswith("$iothub/twin/GET"):
                twin = {"desired": {**self.desired, "$version": self.version},
                        "reported": self.reported}
                client.publish(f"$iothub/twin/res/200/?$rid={params['$rid']}", json.dumps(twin))
            elif topic.startswith("$iothub/twin/PATCH/properties/reported"):
                patch = json.loads(msg.payload)
                merged = merge(self.reported, patch)
                if len(json.dumps(merged)) > self.reported_limit or _refused_key(patch):
                    self.refused_patches += 1
                    client.publish(f"$iothub/twin/res/400/?$rid={params['$rid']}",
                                   json.dumps({"errorCode": 400004}))
                else:
                    self.reported_patches.append(patch)
                    self.reported = merged
                    if self.answer_reported:
                        client.publish(f"$iothub/twin/res/204/?$rid={params['$rid']}"
                                       "&$version=1", b"")
            elif topic.startswith("$iothub/methods/res/"):
                status = int(topic.split("/")[3])
                self._method_results[params["$rid"]] = (status, json.loads(msg.payload or b"null"))
            elif topic.startswith(f"{self.prefix}/messages/events/"):
                props = dict(urllib.parse.parse_qsl(topic.split("/messages/events/", 1)[1]))
                self.messages.append(OutputMessage(props.get("$.on", ""), props,
                                                   json.loads(msg.payload)))
            self._lock.notify_all()



def _refused_key(doc: Any) -> bool:
    """Whether a key anywhere in ``doc`` breaks IoT Hub's rule for twin keys."""
    if isinstance(doc, dict):
        return any(any(c in str(k) for c in ".$ ") or _refused_key(v) for k, v in doc.items())
    return False
