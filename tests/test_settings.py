"""Settings models, sources and the all-or-nothing store."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
from tests.support.documents import nested
from tests.support.folders import data_paths


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


# -- a full desired document applies field by field; a patch stays all or nothing ----------


def test_a_bad_value_in_a_full_read_never_blocks_a_good_change_elsewhere() -> None:
    store = SettingsStore(CameraSettings)
    store.replace_twin({"$version": 2, "trigger": {"min_score": 0.6, "cooldown_s": 5}})
    outcome = store.replace_twin({"$version": 3, "trigger": {"min_score": 7, "cooldown_s": 12},
                                  "sampling": {"detect_fps": 2, "jpeg_qualty": 90}})
    assert outcome.accepted and store.version == 3
    s = store.current
    assert (s.trigger.cooldown_s, s.sampling.detect_fps) == (12, 2), "the good fields apply"
    assert s.trigger.min_score == 0.6, "the bad one keeps the value in force"
    rejected = store.report()["rejected"]
    assert store.report()["status"] == "rejected" and rejected["partial"] is True
    assert sorted(e["path"] for e in rejected["errors"]) == ["sampling.jpeg_qualty",
                                                            "trigger.min_score"]


def test_a_section_rule_broken_in_a_full_read_keeps_that_section_in_force() -> None:
    store = SettingsStore(CameraSettings)
    store.replace_twin({"$version": 1, "trigger": {"confirm_hits": 2}})
    store.replace_twin({"$version": 2, "trigger": {"confirm_hits": 9},
                        "recording": {"post_roll_s": 7}})
    assert store.current.trigger.confirm_hits == 2
    assert store.current.recording.post_roll_s == 7
    assert [e["path"] for e in store.report()["rejected"]["errors"]] == ["trigger"]


def test_at_boot_a_bad_field_of_the_twin_falls_back_to_its_last_good_value(tmp_path: Path
                                                                            ) -> None:
    path = tmp_path / "last_good.json"
    SettingsStore(CameraSettings, last_good_path=path).replace_twin(
        {"$version": 4, "trigger": {"cooldown_s": 42, "min_score": 0.8}})
    store = SettingsStore(CameraSettings, last_good_path=path)
    store.replace_twin({"$version": 5, "trigger": {"cooldown_s": "soon", "min_score": 0.9}})
    assert (store.current.trigger.cooldown_s, store.current.trigger.min_score) == (42, 0.9)


# -- $version -------------------------------------------------------------------------------


def test_version_never_goes_backwards() -> None:
    store = SettingsStore(CameraSettings)
    store.replace_twin({"$version": 5, "trigger": {"cooldown_s": 5}})
    late_patch = store.apply_patch({"$version": 4, "trigger": {"cooldown_s": 4}})
    repeated = store.apply_patch({"$version": 5, "trigger": {"cooldown_s": 6}})
    late_read = store.replace_twin({"$version": 3, "trigger": {"cooldown_s": 3}})
    assert late_patch.stale and repeated.stale and late_read.stale
    assert store.current.trigger.cooldown_s == 5 and store.version == 5
    assert store.report()["status"] == "applied", "an old document is not a rejection"
    assert store.replace_twin({"$version": 5, "trigger": {"cooldown_s": 7}}).accepted


def test_the_first_read_wins_over_the_version_saved_by_another_twin(tmp_path: Path) -> None:
    """A module identity made anew starts its twin at $version 1 again."""
    path = tmp_path / "last_good.json"
    SettingsStore(CameraSettings, last_good_path=path).replace_twin(
        {"$version": 40, "trigger": {"cooldown_s": 40}})
    store = SettingsStore(CameraSettings, last_good_path=path)
    assert store.restore_last_good() and store.version == 40
    assert store.replace_twin({"$version": 2, "trigger": {"cooldown_s": 2}}).accepted
    assert store.version == 2 and store.current.trigger.cooldown_s == 2


# -- what a document may be ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [17, 100_000])
def test_nesting_deeper_than_the_bound_is_rejected_and_reported(depth: int) -> None:
    store = SettingsStore(CameraSettings)
    for outcome in (store.apply_patch({"$version": 1, "trigger": nested(depth)}),
                    store.replace_twin({"$version": 2, "trigger": nested(depth)})):
        assert not outcome.accepted
        assert outcome.errors[0].reason == "nested deeper than 16 levels"
    assert store.report()["rejected"]["errors"][0]["path"].startswith("trigger.a.a")


@pytest.mark.parametrize(("patch", "path"), [
    ({"trigger": {"cooldown_s": True}}, "trigger.cooldown_s"),
    ({"sampling": {"jpeg_quality": False}}, "sampling.jpeg_quality"),
    ({"trigger": {"label_min_score": {"graffiti": True}}}, "trigger.label_min_score"),
    ({"trigger": {"include_zones": [[[True, 0], [0, 1], [1, 1]]]}}, "trigger.include_zones"),
])
def test_a_boolean_is_not_a_number(patch: dict[str, Any], path: str) -> None:
    outcome = SettingsStore(CameraSettings).apply_patch(patch)
    assert [(e.path, e.reason) for e in outcome.errors] == [
        (path, "a boolean (true/false) is not a number")]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e308, "inf"])
def test_non_finite_and_huge_numbers_are_refused_where_a_bound_exists(value: Any) -> None:
    from config.uploader import UploaderSettings

    assert not SettingsStore(CameraSettings).apply_patch(
        {"trigger": {"cooldown_s": value}}).accepted
    assert not SettingsStore(UploaderSettings).apply_patch(
        {"outbox": {"quota_mb": value}}).accepted


def test_a_rejection_quotes_excerpts_and_stays_small() -> None:
    """A twin full of long keys and values: the report names ten errors and counts the rest,
    each quoting at most ~200 characters, well under IoT Hub's 32 KB."""
    patch = {"trigger": {f"k{i}-" + "x" * 2000: "v" * 30_000 for i in range(200)},
             "sampling": {"detector_url": "y" * 100_000}}
    store = SettingsStore(CameraSettings)
    store.apply_patch(patch)
    rejected = store.report()["rejected"]
    assert len(rejected["errors"]) == 10 and rejected["more"] == 191
    assert len(json.dumps(rejected)) < 8000
    assert all(len(str(e.get("value", ""))) < 260 for e in rejected["errors"])


@pytest.mark.parametrize(("value", "why"), [("../x", "'../x'"), (".", "'.'"), ("a/b", "'a/b'"),
                                           ("x" * 65, "'xxxx"),
                                           ("4021; rm -rf /", "'4021; rm")])
def test_camera_and_train_ids_follow_the_identifier_rule(value: str, why: str) -> None:
    for field in ("camera_id", "train_id", "carriage", "position"):
        outcome = SettingsStore(CameraSettings).apply_patch({"identity": {field: value}})
        assert [e.path for e in outcome.errors] == [f"identity.{field}"]
        assert why in outcome.errors[0].reason and "not a valid identifier" in \
            outcome.errors[0].reason


# -- YAML and files ---------------------------------------------------------------------------


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


def test_yaml_aliases_are_refused_before_anything_expands() -> None:
    from config.layers import load_yaml

    assert len(BILLION_LAUGHS) < 2048
    with pytest.raises(SettingsRejected) as info:
        load_yaml(BILLION_LAUGHS, "camera.yaml")
    error = info.value.errors[0]
    assert error.reason.startswith("YAML aliases (*name) are not allowed") and error.line == 2
    assert env_layer("CAMERA_", {"CAMERA_TRIGGER__LABELS": "[&a x, *a]"}) == {
        "trigger": {"labels": "[&a x, *a]"}}, "an alias in a variable stays plain text"


def test_yaml_values_are_json_values() -> None:
    from config.layers import load_yaml

    assert load_yaml("identity:\n  camera_id: 2026-12-01\n", "f")[0] == {
        "identity": {"camera_id": "2026-12-01"}}, "a date stays text, as in a twin"
    for text, reason in [("a: !!binary aGk=\n", "a bytes is not a settings value"),
                         ("1: x\n", "key 1 is not a string"),
                         ("[" * 40 + "]" * 40 + "\n", "nested deeper than 16 levels")]:
        with pytest.raises(SettingsRejected) as info:
            load_yaml(text, "f")
        assert reason in info.value.errors[0].reason


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p.symlink_to("/etc/passwd"), "a symbolic link"),
    (lambda p: p.mkdir(), "a folder, not a file"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.write_bytes(b"\x00\x01\x02\xff" * 10), "not a text file"),
    (lambda p: p.write_bytes(b"a: \xff\xfe\n"), "not UTF-8 text"),
    (lambda p: p.write_text("#" * 70_000), "65536"),
    (lambda p: None, "file not found"),
])
def test_a_file_that_cannot_be_a_settings_file_is_refused_with_its_reason(
        tmp_path: Path, make: Callable[[Path], object], reason: str) -> None:
    from config.layers import load_yaml_file

    path = tmp_path / "camera.yaml"
    make(path)
    with pytest.raises(SettingsRejected) as info:
        load_yaml_file(path)
    assert reason in info.value.errors[0].reason
    assert info.value.errors[0].source == str(path)


@pytest.mark.parametrize("key", ["a.b", "a$b", "spray paint", "tab\t", ""])
def test_per_label_keys_follow_iot_hubs_rule_for_twin_keys(key: str) -> None:
    """Otherwise the settings in force could not be reported (the hub refuses such keys)."""
    outcome = SettingsStore(CameraSettings).apply_patch(
        {"trigger": {"label_min_score": {key: 0.5}}})
    assert not outcome.accepted and "IoT Hub refuses such keys" in outcome.errors[0].reason


def runtime_settings(module: str, data_dir: Path, environ: dict[str, str] | None = None) -> Any:
    """The settings a module started with ``--data-dir data_dir`` runs with (defaults and
    ``environ``; no twin)."""
    from edge_link.runtime import ModuleRuntime, RuntimeOptions

    spec = MODULES[module]
    return ModuleRuntime(spec, RuntimeOptions(None, data_dir), environ=environ or {}).settings


def test_two_detectors_with_different_data_dirs_share_no_state(tmp_path: Path) -> None:
    one, two = (runtime_settings("detector", tmp_path / name) for name in ("one", "two"))
    assert one.model_repository.dir == tmp_path / "one" / "models"
    assert two.inference.cache_dir == tmp_path / "two" / "ov_cache"
    assert set(data_paths(one).values()).isdisjoint(data_paths(two).values())
    # An absolute path (a volume) is taken as it is; an empty cache folder is no cache.
    volume = runtime_settings("detector", tmp_path / "one",
                              {"DETECTOR_MODEL_REPOSITORY__DIR": "/models"})
    assert volume.model_repository.dir == Path("/models")
    store = SettingsStore(DetectorSettings, data_dir=tmp_path / "one")
    assert store.apply_patch({"inference": {"cache_dir": ""}}).accepted
    assert store.current.inference.cache_dir is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_default_folder_is_under_the_data_dir(module: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folders = data_paths(runtime_settings(module, Path("data") / module))
    assert folders, "no folder setting found"
    for setting, path in folders.items():
        assert path.is_relative_to(tmp_path / "data" / module), (setting, path)
