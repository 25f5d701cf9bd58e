"""Raw exports from the portal and AutoML, packaged by ``graffiti-edge model package`` and
served through a twin update with the patch the command printed, as an operator would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.detector.running import Running
from tests.detector.test_packaging import (
    automl_yolov5_folder,
    custom_vision_zip,
    printed_patch,
    run_package,
)
from tests.detector.updates.server import PackageServer
from tests.detector.updates.test_updates import serving, wait_status

LAYOUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "custom-vision-portal-zip": (lambda folder: custom_vision_zip(folder / "export.zip"),
                                 "customvision-compact"),
    "automl-output-folder": (lambda folder: automl_yolov5_folder(folder / "outputs"), "yolov5"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_raw_export_packaged_is_served_through_the_twin(
        layout: str, detector: Callable[..., Running], server: PackageServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    build, fmt = LAYOUTS[layout]
    output = tmp_path / "built" / "tags-3.1.0.zip"
    code, out, err = run_package(capsys, str(build(tmp_path)), "--name", "tags",
                                 "--version", "3.1.0", "-o", str(output))
    assert (code, err) == (0, "")
    patch = printed_patch(out)["model"]
    patch["url"] = server.add("/models/tags-3.1.0.zip", output.read_bytes())
    det = detector()
    assert det.service.wait_ready(20) and serving(det) == "1.0.0"
    det.edit("model", **patch)
    state = wait_status(det, "active", "3.1.0")
    assert (state["name"], state["format"]) == ("tags", fmt)
    assert det.post("/score").json["model"]["version"] == "3.1.0"
