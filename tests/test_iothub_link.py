"""The twin link through the real azure-iot-device client against Mosquitto + a hub responder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.registry import module_spec
from contracts.messages import EventStarted
from edge_link.base import BadIdentity, Identity, LinkHandlers
from edge_link.factory import open_link
from edge_link.iothub import IoTHubLink, hub_message_id
from edge_link.runtime import ModuleRuntime, RuntimeOptions
from tests.support.iothub import HubResponder
from tests.support.mosquitto import Mosquitto, start_mosquitto
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runtime(hub: HubResponder, hub_env: dict[str, str], data_dir: Path
            ) -> Iterator[ModuleRuntime]:
    hub.desired = {"trigger": {"min_score": 0.65, "cooldown_s": 12},
                   "identity": {"camera_id": "platform-3"}}
    rt = ModuleRuntime(module_spec("camera"), RuntimeOptions(None, data_dir, twin_wait_s=20),
                       environ=hub_env)
    rt.start()
    yield rt
    rt.stop()


def test_start_reads_desired_twin_into_settings(runtime: ModuleRuntime, hub: HubResponder
                                                ) -> None:
    assert runtime.link.kind == "iothub"
    assert runtime.settings.trigger.min_score == 0.65
    assert runtime.settings.trigger.cooldown_s == 12
    assert runtime.settings.identity.camera_id == "platform-3"
    hub.wait_for(lambda: hub.reported.get("settings", {}).get("status") == "applied", 10,
                 "reported settings")
    in_force = hub.reported["settings"]["inForce"]
    assert in_force["trigger"]["min_score"] == 0.65
    assert hub.reported["settings"]["version"] == hub.version


def test_desired_patch_applies_live_and_is_reported(runtime: ModuleRuntime, hub: HubResponder
                                                    ) -> None:
    seen: list[tuple[str, ...]] = []
    runtime.subscribe(lambda old, new, changed: seen.append(changed))
    version = hub.patch_desired({"sampling": {"detect_fps": 2.5}})
    hub.wait_for(lambda: hub.reported.get("settings", {}).get("version") == version, 10,
                 "reported version of the patch")
    assert runtime.settings.sampling.detect_fps == 2.5
    assert hub.reported["settings"]["inForce"]["sampling"]["detect_fps"] == 2.5
    assert seen == [("sampling.detect_fps",)]
    # null removes the key: the value falls back to the default.
    version = hub.patch_desired({"trigger": {"min_score": None}})
    hub.wait_for(lambda: hub.reported["settings"].get("version") == version, 10, "null patch")
    assert runtime.settings.trigger.min_score == 0.5


def test_invalid_patch_is_rejected_whole_and_reported(runtime: ModuleRuntime, hub: HubResponder
                                                      ) -> None:
    version = hub.patch_desired({"trigger": {"min_scor": 0.1, "cooldown_s": 99}})
    hub.wait_for(lambda: (hub.reported.get("settings", {}).get("rejected") or {})
                 .get("version") == version, 10, "reported rejection")
    rejected = hub.reported["settings"]["rejected"]
    assert hub.reported["settings"]["status"] == "rejected"
    assert [e["path"] for e in rejected["errors"]] == ["trigger.min_scor"]
    assert "did you mean 'min_score'" in rejected["errors"][0]["reason"]
    # The valid half of the patch is not applied either; the last good settings stay.
    assert runtime.settings.trigger.cooldown_s == 12
    assert runtime.settings.trigger.min_score == 0.65
    assert hub.reported["settings"]["version"] != version


def test_output_message_arrives_with_properties(runtime: ModuleRuntime, hub: HubResponder
                                                ) -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-1", start_utc=now,
                              clip_from_utc=now, max_score=0.9))
    hub.wait_for(lambda: any(m.output == "events" for m in hub.messages), 10, "output message")
    message = next(m for m in hub.messages if m.output == "events")
    assert message.properties["type"] == "event.started"
    assert message.properties["$.ct"] == "application/json"
    assert message.properties["$.ce"] == "utf-8"
    assert message.body["eventId"] == "ev-1"
    assert message.body["deviceId"] == "train-0001"


def test_direct_method_is_answered(runtime: ModuleRuntime, hub: HubResponder) -> None:
    runtime.register_method("record", lambda payload: (202, {"seconds": payload["seconds"]}))
    assert hub.invoke_method("record", {"seconds": 30}) == (202, {"seconds": 30})
    status, body = hub.invoke_method("ping", {"n": 1})
    assert status == 200 and body["echo"] == {"n": 1} and body["module"] == "camera"
    status, body = hub.invoke_method("nope", {})
    assert status == 404 and "unknown method 'nope'" in body["error"]


def test_offline_at_start_runs_on_last_good_then_applies_twin_after_reconnect(
    tmp_path: Path, data_dir: Path
) -> None:
    """A train that boots in a tunnel: no hub at start, then the hub comes and goes."""
    certs, plain, hub, env = _tls_hub(tmp_path, "train-0002", "camera_module",
                                      desired={"trigger": {"cooldown_s": 45}})
    # The last good twin layer saved by an earlier run is what the module boots on.
    (data_dir / "state").mkdir(parents=True)
    (data_dir / "state" / "settings.last_good.json").write_text(
        '{"version": 7, "twin": {"trigger": {"cooldown_s": 20}}}')
    runtime = ModuleRuntime(module_spec("camera"), RuntimeOptions(None, data_dir, twin_wait_s=1),
                            environ=env)
    runtime.start()
    broker = None
    try:
        assert runtime.settings.trigger.cooldown_s == 20
        broker = start_mosquitto(tmp_path / "late", host="127.0.0.2", plain_port=plain,
                                 certs=certs)
        hub.start()
        hub.wait_for(lambda: hub.reported.get("settings", {}).get("inForce", {})
                     .get("trigger", {}).get("cooldown_s") == 45, 60, "twin after connect")
        assert runtime.settings.trigger.cooldown_s == 45
        # The hub goes away; a desired change made meanwhile is picked up on reconnect,
        # because the module re-reads the full twin rather than waiting for a patch.
        broker = _desired_changed_while_away(hub, broker, tmp_path / "late", plain, certs)
        hub.wait_for(lambda: runtime.settings.trigger.cooldown_s == 90, 90, "twin re-read")
    finally:
        runtime.stop()
        hub.stop()
        if broker is not None:
            broker.stop()


def test_output_messages_carry_a_stable_message_id(runtime: ModuleRuntime, hub: HubResponder
                                                   ) -> None:
    """A fact about one event goes with the same id every time it is sent (IoT Hub's charset:
    the '/' of the contract's id travels as %2F)."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    started = EventStarted(train_id="t1", camera_id="c1", event_id="ev-7", start_utc=now,
                           clip_from_utc=now)
    runtime.send(started)
    runtime.send(started)
    hub.wait_for(lambda: len([m for m in hub.messages if m.output == "events"]) == 2, 10,
                 "both messages")
    ids = [m.properties.get("$.mid") for m in hub.messages if m.output == "events"]
    assert ids == ["event.started%2Fev-7"] * 2
    assert hub_message_id(started.message_id()) == ids[0]


def test_a_report_the_hub_refuses_never_holds_back_outputs(runtime: ModuleRuntime,
                                                           hub: HubResponder) -> None:
    """The hub refuses this report (its limit is lowered here): the message sent after it
    still arrives, the refused section is replaced by a note, and later reports go through."""
    hub.reported_limit = len(json.dumps(hub.reported)) + 3000
    runtime._report({"diagnostics": {"dump": "x" * 5000}})
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-8", start_utc=now,
                              clip_from_utc=now))
    hub.wait_for(lambda: any(m.body.get("eventId") == "ev-8" for m in hub.messages), 15,
                 "the message behind a refused report")
    hub.wait_for(lambda: "notReported" in hub.reported.get("diagnostics", {}), 15, "the note")
    note = hub.reported["diagnostics"]["notReported"]
    assert "refused by IoT Hub" in note["reason"] and note["bytes"] > 5000
    assert hub.refused_patches >= 1
    version = hub.patch_desired({"sampling": {"detect_fps": 3}})
    hub.wait_for(lambda: hub.reported["settings"].get("version") == version, 15, "next report")


def test_a_report_over_the_hub_limit_is_noted_not_sent(runtime: ModuleRuntime,
                                                       hub: HubResponder) -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    runtime._report({"diagnostics": {"dump": "x" * 40000}})
    runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-9", start_utc=now,
                              clip_from_utc=now))
    hub.wait_for(lambda: any(m.body.get("eventId") == "ev-9" for m in hub.messages), 15,
                 "the message")
    hub.wait_for(lambda: "notReported" in hub.reported.get("diagnostics", {}).get("dump", {}),
                 15, "the note")
    assert hub.reported["diagnostics"]["dump"]["notReported"]["bytes"] > 40000
    assert hub.refused_patches == 0, "fitted before sending: the hub never had to refuse it"


def test_a_twin_changed_while_edgehub_lost_every_subscription_is_read_at_reconnect(
    tmp_path: Path, data_dir: Path
) -> None:
    """edgeHub restarted without its store forgets the module's subscriptions, and the SDK
    never subscribes again on its own: the link makes a new client, so the twin, desired
    patches and direct methods all work again."""
    certs, plain, hub, env = _tls_hub(tmp_path, "train-0003", "camera_module",
                                      desired={"trigger": {"cooldown_s": 45}})
    broker, runtime = _camera_through(hub, env, data_dir, tmp_path / "before", plain, certs)
    try:
        assert runtime.settings.trigger.cooldown_s == 45
        # A new persistence folder: the broker comes back knowing no session at all.
        broker = _desired_changed_while_away(hub, broker, tmp_path / "after", plain, certs)
        hub.wait_for(lambda: runtime.settings.trigger.cooldown_s == 90, 90, "twin re-read")
        status, body = hub.invoke_method("ping", {"n": 2}, timeout_s=30)
        assert status == 200 and body["echo"] == {"n": 2}
        hub.patch_desired({"trigger": {"cooldown_s": 33}})
        hub.wait_for(lambda: runtime.settings.trigger.cooldown_s == 33, 30, "desired patch")
    finally:
        runtime.stop()
        hub.stop()
        broker.stop()


def test_an_answer_lost_with_the_connection_does_not_stop_the_link_for_good(
    tmp_path: Path, data_dir: Path
) -> None:
    """The answer to a reported patch never comes (lost as the train enters a tunnel); the SDK
    would wait for it for ever, and the link behind it: no full twin read at reconnect (so a
    key removed meanwhile stays in force), nothing sent. Each SDK call has a deadline, so the
    twin changed meanwhile is read whole and messages flow again."""
    certs, plain, hub, env = _tls_hub(tmp_path, "train-0004", "camera_module",
                                      desired={"trigger": {"cooldown_s": 45, "min_score": 0.7}})
    broker, runtime = _camera_through(hub, env, data_dir, tmp_path / "broker", plain, certs)
    try:
        hub.wait_for(lambda: hub.reported.get("module", {}).get("name") == "camera", 20,
                     "first reports")
        hub.answer_reported = False
        runtime._report({"diagnostics": {"lost": 1}})
        hub.wait_for(lambda: "diagnostics" in hub.reported, 20, "the unanswered patch")
        hub.stop()
        broker.stop()
        hub.desired = {"trigger": {"cooldown_s": 90}}
        hub.version += 1
        hub.answer_reported = True
        broker = start_mosquitto(tmp_path / "broker", host="127.0.0.2", plain_port=plain,
                                 certs=certs)
        hub.__post_init__()
        hub.start()
        hub.wait_for(lambda: (runtime.settings.trigger.cooldown_s,
                              runtime.settings.trigger.min_score) == (90, 0.5), 90,
                     "the whole twin re-read")
        now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-10",
                                  start_utc=now, clip_from_utc=now))
        hub.wait_for(lambda: any(m.body.get("eventId") == "ev-10" for m in hub.messages), 30,
                     "a message after the reconnect")
    finally:
        runtime.stop()
        hub.stop()
        broker.stop()


def test_a_message_queued_offline_survives_a_kill_and_arrives_once_with_its_id(
    tmp_path: Path, data_dir: Path
) -> None:
    """The uploader announces a clip while the hub is away and is SIGKILLed before the link
    sent it: the next process on the same data folder sends it, once, with its message id."""
    certs, plain, hub, env = _tls_hub(tmp_path, "train-0005", "uploader_module")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.link_child", str(data_dir), "clips",
         "clip.uploaded", "clip.uploaded/ev-1/1"],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"queued\n"
    finally:
        child.kill()
        child.wait()
    broker = start_mosquitto(tmp_path / "broker", host="127.0.0.2", plain_port=plain,
                             certs=certs)
    hub.start()
    link = open_link("uploader_module", data_dir=data_dir, twin_file=None, environ=env)
    link.start(_handlers([]))
    try:
        # Sent after the one the old process left: a repeat of that one would come before it.
        link.send("clips", "clip.uploaded", {"messageId": "clip.uploaded/ev-2/1"},
                  message_id="clip.uploaded/ev-2/1")
        hub.wait_for(lambda: len(hub.messages) >= 2, 60, "both messages")
        assert [(m.output, m.properties.get("$.mid"), m.body["messageId"])
                for m in hub.messages] == [
            ("clips", "clip.uploaded%2Fev-1%2F1", "clip.uploaded/ev-1/1"),
            ("clips", "clip.uploaded%2Fev-2%2F1", "clip.uploaded/ev-2/1")]
        assert wait_until(lambda: not any((data_dir / "outbound").glob("*.json")), 10)
    finally:
        link.stop()
        hub.stop()
        broker.stop()


class FakeClient:
    """Just enough of IoTHubModuleClient for the link, with a connection a test can drop.

    ``late_state_callbacks``: the SDK runs the connection-state handler on a thread of its
    own; here the handler for a drop runs only after the next connect, as it does when that
    thread is slow, so the handler reads ``connected`` as True."""

    def __init__(self, desired: dict[str, Any], *, answers: bool = True) -> None:
        self.connected = False
        self.desired = desired
        self.answers = answers
        self.twin_reads = 0
        self.late: list[Callable[[], None]] = []
        self.on_connection_state_change: Callable[[], None] = lambda: None
        self.on_twin_desired_properties_patch_received: Any = None
        self.on_method_request_received: Any = None

    def connect(self) -> None:
        self.connected = True
        for callback in self.late:
            callback()
        self.late.clear()

    def drop(self) -> None:
        self.connected = False
        self.late.append(self.on_connection_state_change)

    def get_twin(self) -> dict[str, Any]:
        self.twin_reads += 1
        if not self.answers:
            threading.Event().wait()
        return {"desired": dict(self.desired), "reported": {}}

    def send_message_to_output(self, message: Any, output: str) -> None:
        """Accepted."""

    def patch_twin_reported_properties(self, patch: dict[str, Any]) -> None:
        """Accepted."""

    def shutdown(self) -> None:
        self.connected = False


def _handlers(seen: list[dict[str, Any]]) -> LinkHandlers:
    return LinkHandlers(on_twin=seen.append, on_patch=lambda patch: True,
                        on_method=lambda name, payload: (404, None))


def test_every_reconnect_reads_the_twin_even_when_the_state_callback_runs_late(
    tmp_path: Path
) -> None:
    client = FakeClient({"$version": 1, "trigger": {"cooldown_s": 20}})
    seen: list[dict[str, Any]] = []
    link = IoTHubLink(lambda: client, Identity("train-1", "camera_module"), queue_dir=tmp_path,
                      retry_initial_s=0.01, retry_max_s=0.05)
    link.start(_handlers(seen))
    try:
        assert wait_until(lambda: bool(seen), 10)
        client.desired = {"$version": 2, "trigger": {"cooldown_s": 90}}
        client.drop()
        link.report({"module": {"n": 1}})
        assert wait_until(lambda: seen[-1]["$version"] == 2, 20), seen
    finally:
        link.stop()


def test_a_twin_read_without_answer_gets_a_new_client_that_subscribes_again(tmp_path: Path
                                                                            ) -> None:
    clients = [FakeClient({"$version": 3}, answers=False), FakeClient({"$version": 3})]
    made: list[FakeClient] = []

    def factory() -> FakeClient:
        made.append(clients[len(made)])
        return made[-1]

    seen: list[dict[str, Any]] = []
    link = IoTHubLink(factory, Identity("train-1", "camera_module"), queue_dir=tmp_path,
                      retry_initial_s=0.01, retry_max_s=0.05, call_timeout_s=0.5)
    link.start(_handlers(seen))
    try:
        assert wait_until(lambda: bool(seen), 20)
        assert len(made) == 2 and made[1].on_method_request_received is not None
    finally:
        link.stop()


def test_ids_that_iot_hub_refuses_are_named_at_link_open(data_dir: Path) -> None:
    env = {"IOTEDGE_MODULEID": "camera_module", "IOTEDGE_DEVICEID": "train 7/../x"}
    with pytest.raises(BadIdentity, match="device id 'train 7/../x' is not a valid IoT Hub id"):
        open_link("camera_module", data_dir=data_dir, twin_file=None, environ=env)
    assert open_link("camera_module", data_dir=data_dir, twin_file=None, environ={
        **env, "IOTEDGE_DEVICEID": "train-7:(a)"}).identity.device_id == "train-7:(a)"


def test_message_ids_are_written_in_iot_hubs_charset_stably() -> None:
    assert hub_message_id(None) is None
    assert hub_message_id("event.started:ev-1") == "event.started:ev-1"
    assert hub_message_id("clip.uploaded/ev-1/2") == "clip.uploaded%2Fev-1%2F2"
    long_id = "clip.uploaded/" + "e" * 120 + "/1"
    assert hub_message_id(long_id) == hub_message_id(long_id)
    assert len(hub_message_id(long_id) or "") == 64


def _desired_changed_while_away(hub: HubResponder, broker: Mosquitto, folder: Path, plain: int,
                                certs: tuple[Path, Path, Path]) -> Mosquitto:
    """The hub and its broker go away; the desired cooldown becomes 90 meanwhile; they come
    back (the broker keeping its sessions when ``folder`` is the one it had)."""
    hub.stop()
    broker.stop()
    hub.desired = {"trigger": {"cooldown_s": 90}}
    hub.version += 1
    broker = start_mosquitto(folder, host="127.0.0.2", plain_port=plain, certs=certs)
    hub.__post_init__()
    hub.start()
    return broker


def _tls_hub(tmp_path: Path, device: str, module: str, **hub_options: Any
             ) -> tuple[tuple[Path, Path, Path], int, HubResponder, dict[str, str]]:
    """A hub stand-in on a free port, its CA, and the environment a module connects with; the
    broker in front of it is the test's to start (some tests start it late)."""
    from local_run.processes import free_port
    from tests.support.mosquitto import make_certificates

    certs = make_certificates(tmp_path / "certs")
    plain = free_port()
    hub = HubResponder(plain, device, module, **hub_options)
    env = {"GRAFFITI_IOTHUB_CONNECTION_STRING": hub.connection_string("127.0.0.2"),
           "GRAFFITI_IOTHUB_CA_FILE": str(certs[0])}
    return certs, plain, hub, env


def _camera_through(hub: HubResponder, env: dict[str, str], data_dir: Path, broker_dir: Path,
                    plain: int, certs: tuple[Path, Path, Path]
                    ) -> tuple[Mosquitto, ModuleRuntime]:
    """The broker and the hub up, then a camera runtime started through them."""
    broker = start_mosquitto(broker_dir, host="127.0.0.2", plain_port=plain, certs=certs)
    hub.start()
    runtime = ModuleRuntime(module_spec("camera"), RuntimeOptions(None, data_dir, twin_wait_s=30),
                            environ=env)
    runtime.start()
    return broker, runtime
