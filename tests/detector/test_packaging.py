"""Raw exports as their tools write them: loaded as they come, and packaged by
``graffiti-edge model package`` after a run on the detector's engine (OpenVINO provider)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from config.detector import DesiredModel
from detector_module.backends import InferenceOptions
from detector_module.engine import load_model, sanity_check
from detector_module.package import load_package
from tests.detector.models import compact_model, compact_raw, constant_model
from tests.detector.updates.conftest import md5_b64

LABELS = ["graffiti", "person"]
CV_METADATA = {"Image.BitmapPixelFormat": "Bgr8", "Image.NominalPixelRange": "NominalRange_0_255",
               "CustomVision.Postprocess.Method": "Yolo"}


def custom_vision_zip(path: Path, labels: list[str] = LABELS) -> Path:
    """The ONNX zip as the Custom Vision portal exports it (a compact domain model)."""
    raw = compact_raw(2, (6, 4), 1, [0.5, 0.5, 0.0, 0.0, 0.0, math.log(3.0), 0.0])
    export = {"DomainType": "ObjectDetection", "Platform": "ONNX", "Flavor": "ONNX",
              "ExporterVersion": "2.0", "ModelFileName": "model.onnx",
              "LabelFileName": "labels.txt", "MetadataPropsFileName":
              "metadata_properties.json", "SchemaVersion": "1.0"}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", compact_model(raw, CV_METADATA))
        zf.writestr("labels.txt", "\n".join(labels) + "\n")
        zf.writestr("metadata_properties.json", json.dumps(CV_METADATA, indent=4))
        zf.writestr("cvexport.manifest", json.dumps(export, indent=2))
        zf.writestr("python/predict.py", "# the export's sample script\n")
        zf.writestr("python/README.md", "sample\n")
    return path


def automl_yolov5_folder(path: Path) -> Path:
    """An Azure ML AutoML for Images YOLOv5 output: model.onnx [1, N, 5 + C], labels.json."""
    rows = np.zeros((1, 100, 7), np.float32)
    rows[0, :, 2:4] = 1.0
    rows[0, 0] = [320, 320, 100, 50, 0.8, 0.25, 1.0]
    path.mkdir()
    (path / "model.onnx").write_bytes(constant_model([("images", "float32", [1, 3, 640, 640])],
                                                     {"output": rows}))
    (path / "labels.json").write_text(json.dumps(LABELS))
    (path / "MLmodel").write_text("flavors: {}\n")
    return path


def automl_faster_rcnn_folder(path: Path) -> Path:
    outputs = {"boxes_0": np.zeros((1, 4), np.float32), "labels_0": np.zeros(1, np.int64),
               "scores_0": np.zeros(1, np.float32)}
    path.mkdir()
    (path / "model.onnx").write_bytes(constant_model([("input", "float32", [1, 3, 600, 800])],
                                                     outputs))
    (path / "labels.json").write_text(json.dumps(LABELS))
    return path


def test_custom_vision_portal_zip_loads_as_it_comes(tmp_path: Path) -> None:
    package = load_package(custom_vision_zip(tmp_path / "Graffiti.ONNX.zip"))
    assert (package.model_file, package.labels) == ("model.onnx", tuple(LABELS))
    model = load_model(package, InferenceOptions(cache_dir=None))
    sanity_check(model)
    assert model.adapter.format == "customvision-compact"
    assert "OpenVINOExecutionProvider" in model.backend.providers


def test_automl_labels_json_loads_as_it_comes(tmp_path: Path) -> None:
    package = load_package(automl_yolov5_folder(tmp_path / "outputs"))
    assert package.labels == tuple(LABELS)
    assert load_model(package, InferenceOptions(cache_dir=None)).adapter.format == "yolov5"


def run_package(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["model", "package", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def printed_patch(out: str) -> dict:
    match = re.search(r"^\{\n.*?^\}$", out, re.DOTALL | re.MULTILINE)
    assert match, out
    return json.loads(match.group(0))


@pytest.mark.parametrize(("layout", "fmt"), [
    ("custom-vision-zip", "customvision-compact"),
    ("automl-folder", "yolov5"),
    ("model-and-labels", "yolov5"),
])
def test_model_package_checks_then_writes_and_prints_what_to_send(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str, fmt: str) -> None:
    if layout == "custom-vision-zip":
        args = [str(custom_vision_zip(tmp_path / "export.zip"))]
    else:
        folder = automl_yolov5_folder(tmp_path / "outputs")
        args = ([str(folder)] if layout == "automl-folder" else
                [str(folder / "model.onnx"), "--labels", str(folder / "labels.json")])
    output = tmp_path / "out" / "tags-1.2.0.zip"
    code, out, err = run_package(capsys, *args, "--name", "tags", "--version", "1.2.0",
                                 "-o", str(output))
    assert (code, err) == (0, "")
    data = output.read_bytes()
    patch = printed_patch(out)
    assert patch["model"]["ContentMD5"] == md5_b64(data)
    assert patch["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert DesiredModel.model_validate(patch["model"]).version == "1.2.0"
    layer = json.loads(output.with_name("tags-1.2.0.layer.json").read_text())
    assert layer["content"]["modulesContent"]["detector_module"][
        "properties.desired.model"] == patch["model"]
    assert re.search(r"az iot edge deployment create --hub-name \$HUB --deployment-id "
                     r"model-tags-1-2-0 --layered --content \S+tags-1\.2\.0\.layer\.json "
                     r"--target-condition \"tags\.fleet='graffiti'\" --priority 20$", out,
                     re.MULTILINE)
    built = load_package(output)
    assert (built.name, built.version, built.labels) == ("tags", "1.2.0", tuple(LABELS))
    model = load_model(built, InferenceOptions(cache_dir=None))
    assert model.adapter.format == fmt
    sanity_check(model)


def test_model_package_keeps_xy_sigmoid_in_the_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "cv.zip"
    code, _, err = run_package(capsys, str(custom_vision_zip(tmp_path / "export.zip")),
                               "--version", "2.0", "--xy-sigmoid", "true", "-o", str(output))
    assert (code, err) == (0, "")
    model = load_model(load_package(output), InferenceOptions(cache_dir=None))
    assert model.adapter.xy_sigmoid is True


@pytest.mark.parametrize(("build", "message"), [
    (automl_faster_rcnn_folder, "AutoML Faster R-CNN or RetinaNet"),
    (lambda p: custom_vision_zip(p.with_suffix(".zip"), [*LABELS, "car"]),
     "the model has 2 classes but its labels file has 3 labels"),
], ids=["faster-rcnn", "label-count"])
def test_model_package_refuses_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], build, message: str) -> None:
    output = tmp_path / "out" / "x.zip"
    code, out, err = run_package(capsys, str(build(tmp_path / "export")), "--version", "1",
                                 "-o", str(output))
    assert code == 1 and message in err and out == ""
    assert not output.parent.exists()
