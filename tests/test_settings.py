"""Settings models, sources and the all-or-nothing store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.camera import CameraSettings
from config.detector import DetectorSettings
from config.errors import SettingsRejected
from config.layers import diff, env_layer, merge
from config.registry import MODULES
from config.store import SettingsStore


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_field_is_documented_and_defaults_validate(name: str) -> None:
    spec = MODULES[name]
    spec.settings()
    schema = spec.settings.model_json_schema()
    undocumented = [
        f"{model}.{field}"
        for model, definition in [("root", schema), *schema.get("$defs", {}).items()]
        for field, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
documents = st.dictionaries(st.text(max_size=4), json_values, max_size=4)


def _without_nulls(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_nulls(v) for k, v in doc.items() if v is not None}
    return doc


@given(documents, documents)
def test_diff_is_the_merge_patch_between_two_documents(old: dict, new: dict) -> None:
    old, new = _without_nulls(old), _without_nulls(new)
    assert merge(old, diff(old, new)) == new


def test_merge_follows_twin_rules() -> None:
    base = {"a": {"x": 1, "y": 2}, "zones": [[1, 2]], "keep": True}
    patch = {"a": {"x": None, "z": 3}, "zones": [[3, 4]]}
    assert merge(base, patch) == {"a": {"y": 2, "z": 3}, "zones": [[3, 4]], "keep": True}
    assert base["a"] == {"x": 1, "y": 2}, "merge must not modify its input"


def test_env_layer_nests_sections_and_parses_collections() -> None:
    env = {
        "CAMERA_TRIGGER__MIN_SCORE": "0.7",
        "CAMERA_TRIGGER__LABELS": "[graffiti, tag]",
        "CAMERA_STREAM__RECONNECT__MAX_S": "120",
        "CAMERA_CONFIG": "/etc/camera.yaml",
        "DETECTOR_SERVER__PORT": "9000",
    }
    layer = env_layer("CAMERA_", env)
    assert layer == {"trigger": {"min_score": "0.7", "labels": ["graffiti", "tag"]},
                     "stream": {"reconnect": {"max_s": "120"}}}
    settings = SettingsStore(CameraSettings, env_layer=layer).current
    assert settings.trigger.min_score == 0.7
    assert settings.stream.reconnect.max_s == 120.0


def test_sources_in_order_defaults_file_env_twin() -> None:
    store = SettingsStore(
        CameraSettings,
        file_layer={"trigger": {"min_score": 0.6, "cooldown_s": 10}, "sampling": {"detect_fps": 2}},
        env_layer={"trigger": {"min_score": "0.7", "cooldown_s": "11"}},
    )
    store.replace_twin({"$version": 4, "trigger": {"min_score": 0.8}})
    s = store.current
    assert (s.trigger.min_score, s.trigger.cooldown_s, s.sampling.detect_fps) == (0.8, 11, 2)
    assert s.recording.pre_roll_s == 5.0
    store.apply_patch({"$version": 5, "trigger": {"min_score": None}})
    assert store.current.trigger.min_score == 0.7, "null falls back to the next lower source"
    assert store.version == 5


def test_bad_value_names_field_value_and_source() -> None:
    with pytest.raises(SettingsRejected) as info:
        SettingsStore(CameraSettings, env_layer={"sampling": {"detect_fps": "fast"}})
    errors = info.value.errors
    assert [(e.path, e.value, e.source) for e in errors] == [("sampling.detect_fps", "fast", "env")]


def test_invalid_patch_is_rejected_as_a_whole() -> None:
    store = SettingsStore(CameraSettings)
    store.replace_twin({"$version": 1, "trigger": {"cooldown_s": 5}})
    seen: list[tuple[str, ...]] = []
    store.subscribe(lambda old, new, changed: seen.append(changed))
    outcome = store.apply_patch({"$version": 2, "trigger": {"cooldown_s": 60,
                                                            "confirm_hits": 9}})
    assert not outcome.accepted
    assert outcome.errors[0].path == "trigger"
    assert "confirm_hits (9) cannot exceed confirm_window (5)" in outcome.errors[0].reason
    assert store.current.trigger.cooldown_s == 5 and store.version == 1 and seen == []
    report = store.report()
    assert report["status"] == "rejected" and report["rejected"]["version"] == 2
    assert store.apply_patch({"$version": 3, "trigger": {"cooldown_s": 60}}).accepted
    assert seen == [("trigger.cooldown_s",)] and store.report()["status"] == "applied"


def test_unknown_key_is_named_with_a_suggestion() -> None:
    outcome = SettingsStore(DetectorSettings).apply_patch({"thresholds": {"nms_iuo": 0.5}})
    assert [(e.path, e.reason) for e in outcome.errors] == [
        ("thresholds.nms_iuo", "unknown key 'nms_iuo' (did you mean 'nms_iou'?)")]


def test_restart_only_fields_are_reported_until_restart() -> None:
    store = SettingsStore(CameraSettings)
    boot = store.replace_twin({"recording": {"outbox_dir": "/outbox"}})
    assert boot.restart_required == (), "nothing runs yet at boot: no restart needed"
    store.mark_started()
    outcome = store.apply_patch({"recording": {"outbox_dir": "/mnt/outbox"},
                                 "trigger": {"min_score": 0.9}})
    assert outcome.restart_required == ("recording.outbox_dir",)
    assert store.report()["restartRequired"] == ["recording.outbox_dir"]
    store.apply_patch({"recording": {"outbox_dir": "/outbox"}})
    assert store.report()["restartRequired"] == [], "back to the started value: no restart"


def test_bad_twin_at_boot_falls_back_to_last_good(tmp_path: Path) -> None:
    path = tmp_path / "state" / "last_good.json"
    first = SettingsStore(CameraSettings, last_good_path=path)
    first.replace_twin({"$version": 8, "trigger": {"cooldown_s": 42}})
    assert json.loads(path.read_text())["version"] == 8
    assert path.stat().st_mode & 0o077 == 0, "may hold a twin-supplied secret: owner only"
    second = SettingsStore(CameraSettings, last_good_path=path)
    outcome = second.replace_twin({"$version": 9, "trigger": {"cooldown_s": "soon"}})
    assert not outcome.accepted
    assert second.current.trigger.cooldown_s == 42 and second.version == 8
    assert second.report()["rejected"]["version"] == 9


def test_seed_model_keys_are_accepted() -> None:
    model = DetectorSettings.model_validate({"model": {
        "FileName": "graffiti-1.1.zip", "DownloadUrl": "https://x/graffiti-1.1.zip?sig=abc",
        "ContentMD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}}).model
    assert model.file_name == "graffiti-1.1.zip" and model.content_md5 == "1B2M2Y8AsgTpgAmY7PhCfg=="
    with pytest.raises(ValueError, match="url must start with"):
        DetectorSettings.model_validate({"model": {"url": "ftp://x/y.zip"}})


def test_secrets_are_redacted_in_the_report() -> None:
    from config.uploader import UploaderSettings

    store = SettingsStore(UploaderSettings, env_layer={"upload": {
        "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0;"}})
    text = json.dumps(store.report())
    assert "c2VjcmV0" not in text and "AccountName" not in text
    assert store.current.upload.connection_string.get_secret_value().endswith("c2VjcmV0;")


def test_a_rotated_secret_counts_as_a_change() -> None:
    from config.uploader import UploaderSettings

    store = SettingsStore(UploaderSettings)
    store.replace_twin({"upload": {"connection_string": "AccountName=a;AccountKey=b2xk;"}})
    outcome = store.apply_patch({"upload": {"connection_string": "AccountName=a;AccountKey=bmV3;"}})
    assert outcome.changed == ("upload.connection_string",)
