"""The twin link through the real azure-iot-device client against Mosquitto + a hub responder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.registry import module_spec
from contracts.messages import EventStarted
from edge_link.runtime import ModuleRuntime, RuntimeOptions
from tests.support.iothub import HubResponder

pytestmark = pytest.mark.integration


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
    from local_run.processes import free_port
    from tests.support.mosquitto import make_certificates, start_mosquitto

    certs = make_certificates(tmp_path / "certs")
    plain = free_port()
    hub = HubResponder(plain, "train-0002", "camera_module",
                       desired={"trigger": {"cooldown_s": 45}})
    env = {"GRAFFITI_IOTHUB_CONNECTION_STRING": hub.connection_string("127.0.0.2"),
           "GRAFFITI_IOTHUB_CA_FILE": str(certs[0])}
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
        hub.stop()
        broker.stop()
        hub.desired = {"trigger": {"cooldown_s": 90}}
        hub.version += 1
        broker = start_mosquitto(tmp_path / "late", host="127.0.0.2", plain_port=plain,
                                 certs=certs)
        hub.__post_init__()
        hub.start()
        hub.wait_for(lambda: runtime.settings.trigger.cooldown_s == 90, 90, "twin re-read")
    finally:
        runtime.stop()
        hub.stop()
        if broker is not None:
            broker.stop()
