"""Twin defaults in the manifest are valid settings, and the modules agree with each other.

The settings models are read when the tests run, so a field renamed in a model, or a typo in
the manifest, fails here rather than as a rejected twin on a train.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator
from pydantic import BaseModel, ValidationError

from config.layers import env_layer, merge
from config.paths import under_data_dir
from config.registry import MODULES
from tests.deploy.conftest import BLOB_MODULE, agent_modules, desired, sample_variables
from tests.support.folders import data_paths

# Blob Storage on IoT Edge's desired properties, as Microsoft documents them
# (learn.microsoft.com/azure/iot-edge/how-to-store-data-blob): unknown keys are errors here
# because the module itself ignores a misspelt one silently.
BLOB_TWIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["deviceToCloudUploadProperties", "deviceAutoDeleteProperties"],
    "properties": {
        "deviceToCloudUploadProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["uploadOn", "uploadOrder", "cloudStorageConnectionString",
                         "storageContainersForUpload", "deleteAfterUpload"],
            "properties": {
                "uploadOn": {"type": "boolean"},
                "uploadOrder": {"enum": ["NewestFirst", "OldestFirst"]},
                "cloudStorageConnectionString": {"type": "string", "minLength": 1},
                "storageContainersForUpload": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["target"],
                        "properties": {"target": {"type": "string", "minLength": 1}},
                    },
                },
                "deleteAfterUpload": {"type": "boolean"},
            },
        },
        "deviceAutoDeleteProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["deleteOn", "deleteAfterMinutes", "retainWhileUploading"],
            "properties": {
                "deleteOn": {"type": "boolean"},
                "deleteAfterMinutes": {"type": "integer", "minimum": 1},
                "retainWhileUploading": {"type": "boolean"},
            },
        },
    },
}


def module_settings(manifest: dict[str, Any], module: str) -> BaseModel:
    """What the module runs with: its manifest env under its twin defaults (twin wins)."""
    spec = MODULES[module]
    env = {k: str(v["value"]) for k, v in agent_modules(manifest)[f"{module}_module"]
           .get("env", {}).items()}
    document = merge(env_layer(spec.env_prefix, env), desired(manifest, f"{module}_module"))
    return spec.settings.model_validate(document)


def binds(manifest: dict[str, Any], module: str) -> dict[str, str]:
    """Container path -> volume (or host folder) of a module's binds."""
    options = json.loads(agent_modules(manifest)[module]["settings"]["createOptions"])
    return {b.split(":")[1]: b.split(":")[0] for b in options["HostConfig"]["Binds"]}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_twin_defaults_are_valid_settings(manifest: dict[str, Any], module: str) -> None:
    MODULES[module].settings.model_validate(desired(manifest, f"{module}_module"))
    module_settings(manifest, module)


@pytest.mark.parametrize(("module", "section", "typo"), [
    ("camera", "trigger", "min_scor"),
    ("detector", "thresholds", "nms_iuo"),
    ("uploader", "outbox", "quota"),
])
def test_a_typo_in_twin_defaults_is_caught(manifest: dict[str, Any], module: str, section: str,
                                           typo: str) -> None:
    twin = copy.deepcopy(desired(manifest, f"{module}_module"))
    twin[section][typo] = 1
    with pytest.raises(ValidationError, match=typo):
        MODULES[module].settings.model_validate(twin)


def test_the_model_is_left_to_layered_deployments(manifest: dict[str, Any]) -> None:
    """A model in the base deployment would be overwritten by, or fight, the model layer."""
    assert "model" not in desired(manifest, "detector_module")


def test_camera_and_uploader_share_the_outbox(manifest: dict[str, Any]) -> None:
    camera = module_settings(manifest, "camera")
    uploader = module_settings(manifest, "uploader")
    outbox = str(camera.recording.outbox_dir)
    assert outbox == str(uploader.outbox.dir)
    camera_volume = binds(manifest, "camera_module")[outbox]
    assert camera_volume == binds(manifest, "uploader_module")[outbox]


def test_detector_keeps_models_and_every_module_its_state_on_a_volume(
    manifest: dict[str, Any],
) -> None:
    detector = module_settings(manifest, "detector")
    assert str(detector.model_repository.dir) in binds(manifest, "detector_module")
    volumes = []
    for module, spec in MODULES.items():
        data_dir = agent_modules(manifest)[f"{module}_module"]["env"][
            f"{spec.env_prefix}DATA_DIR"]["value"]
        volumes.append(binds(manifest, f"{module}_module")[data_dir])
    assert len(set(volumes)) == len(volumes), "each module needs its own state volume"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_folder_of_a_module_is_on_one_of_its_volumes(manifest: dict[str, Any],
                                                           module: str) -> None:
    """Relative folders are under the module's DATA_DIR: that too must be a volume, or the
    model repository, the compiled-model cache or the outbox is lost with the container."""
    data_dir = agent_modules(manifest)[f"{module}_module"]["env"][
        f"{MODULES[module].env_prefix}DATA_DIR"]["value"]
    settings = under_data_dir(module_settings(manifest, module), Path(data_dir))
    volumes = [Path(target) for target in binds(manifest, f"{module}_module")]
    for setting, path in data_paths(settings).items():
        assert any(path.is_relative_to(v) for v in volumes), (setting, path)


def test_camera_reaches_the_detector_by_module_name(manifest: dict[str, Any]) -> None:
    url = urlsplit(module_settings(manifest, "camera").sampling.detector_url)
    port = module_settings(manifest, "detector").server.port
    assert (url.hostname, url.port) == ("detector_module", port)
    options = json.loads(agent_modules(manifest)["detector_module"]["settings"]["createOptions"])
    assert f"{port}/tcp" in options["ExposedPorts"]


def test_blob_module_twin_has_the_documented_shape(manifest: dict[str, Any]) -> None:
    errors = list(Draft4Validator(BLOB_TWIN_SCHEMA).iter_errors(desired(manifest, BLOB_MODULE)))
    assert errors == []
    broken = copy.deepcopy(desired(manifest, BLOB_MODULE))
    broken["deviceAutoDeleteProperties"]["retainWhileUploding"] = True
    assert not Draft4Validator(BLOB_TWIN_SCHEMA).is_valid(broken)


def test_blob_module_tiers_the_uploaders_container_and_keeps_what_is_pending(
    manifest: dict[str, Any],
) -> None:
    blob = desired(manifest, BLOB_MODULE)
    upload = blob["deviceToCloudUploadProperties"]
    container = module_settings(manifest, "uploader").upload.container
    assert upload["uploadOn"] and upload["uploadOrder"] == "OldestFirst"
    assert list(upload["storageContainersForUpload"]) == [container]
    assert blob["deviceAutoDeleteProperties"]["retainWhileUploading"] is True
    assert blob["deviceAutoDeleteProperties"]["deleteAfterMinutes"] >= 7 * 24 * 60


def test_uploader_writes_to_the_local_blob_module(manifest: dict[str, Any]) -> None:
    secret = module_settings(manifest, "uploader").upload.connection_string
    parts = dict(p.split("=", 1) for p in secret.get_secret_value().split(";"))
    account = sample_variables()["LOCAL_STORAGE_ACCOUNT_NAME"]
    assert parts["BlobEndpoint"] == f"http://{BLOB_MODULE}:11002/{account}"
    assert parts["AccountName"] == account
    assert parts["AccountKey"] == sample_variables()["LOCAL_STORAGE_ACCOUNT_KEY"]
    blob = agent_modules(manifest)[BLOB_MODULE]
    assert blob["env"]["LOCAL_STORAGE_ACCOUNT_NAME"]["value"] == account
    assert binds(manifest, BLOB_MODULE)["/blobroot"]


def test_start_up_order(manifest: dict[str, Any]) -> None:
    """edgeAgent starts lower startupOrder first: storage and detector before the camera."""
    order = {name: m["startupOrder"] for name, m in agent_modules(manifest).items()}
    assert order[BLOB_MODULE] < order["uploader_module"] < order["camera_module"]
    assert order["detector_module"] < order["camera_module"]


def test_every_module_is_limited_and_restarted_by_iot_edge(manifest: dict[str, Any]) -> None:
    """Memory caps keep one module from starving the others; restarts belong to edgeAgent
    (a Docker RestartPolicy in createOptions would fight it)."""
    for name, module in agent_modules(manifest).items():
        host = json.loads(module["settings"]["createOptions"])["HostConfig"]
        assert host["Memory"] >= 256 * 1024 * 1024, name
        assert "RestartPolicy" not in host, name
        assert module["restartPolicy"] == "always" and module["status"] == "running", name
