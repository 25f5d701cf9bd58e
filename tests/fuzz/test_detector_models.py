"""Model packages built to misbehave, against a running detector (issue 16, class 6): an
endless Loop, NaN outputs, huge inputs, a million labels, a warm-up that eats memory, a
download that never ends; and random manifests and label files against the package loader.

Each is refused with its reason while the old model keeps serving, the detector takes later
patches, and a SIGTERM during a trial ends the module at once with no trial left running.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.identifiers import check_identifier
from detector_module.package import MAX_LABEL_LENGTH, MAX_LABELS, PackageError, load_package
from tests.detector.http import call, jpeg
from tests.detector.models import (
    constant_model,
    dynamic_yolov8_model,
    endless_loop_model,
    memory_hog_model,
    nan_model,
    sample_manifest,
    yolov8_model,
    yolov8_output,
)
from tests.detector.running import Running, twin_text
from tests.detector.updates.conftest import md5_b64, package_bytes
from tests.detector.updates.server import PackageServer
from tests.detector.updates.test_updates import model_state, serving, wait_status
from tests.support.polling import wait_until

ROWS = [[160, 160, 64, 32, 0.9, 0.1]]
MEMORY_MB = 512
PACKAGE_MB = 20


def package(version: str, model: bytes, labels: list[str] | None = None,
            **manifest: object) -> bytes:
    """A package zip: the model, its labels and a yolov8 manifest with ``manifest`` on top."""
    doc = {**sample_manifest(320, 320), "name": "graffiti-test", "version": version,
           **manifest}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.onnx", model)
        zf.writestr("labels.txt", "\n".join(labels or ["graffiti", "person"]) + "\n")
        zf.writestr("manifest.json", json.dumps(doc))
    return buf.getvalue()


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def server() -> Iterator[PackageServer]:
    with PackageServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One detector for the whole file: every refusal must leave it as it was."""
    root = tmp_path_factory.mktemp("models")
    base = root / "graffiti-test-1.0.0.zip"
    base.write_bytes(package_bytes("1.0.0"))
    running = Running(root, base, {
        "inference": {"cache_dir": str(root / "ov_cache"), "load_memory_mb": MEMORY_MB,
                      "load_timeout_s": 600},
        "model_repository": {"dir": str(root / "repo"), "max_package_mb": PACKAGE_MB,
                             "retry": {"initial_s": 0.05, "max_s": 0.2},
                             "read_timeout_s": 5, "connect_timeout_s": 2}})
    assert running.service.wait_ready(30)
    yield running
    running.stop()


_versions = iter(range(1, 1000))


def next_version() -> str:
    return f"3.0.{next(_versions)}"


@pytest.mark.parametrize(("kind", "reason"), [
    ("nan-outputs", "NaN or infinite"),
    ("huge-dynamic-input", "less than or equal to 4096"),
    ("huge-static-input", "side over 4096"),
    ("million-labels", f"over the limit of {MAX_LABELS}"),
    ("warm-up-eats-memory", "inference.load_memory_mb"),
    ("endless-download", "model_repository.max_package_mb"),
])
def test_a_misbehaving_package_is_refused_and_the_old_model_serves(
        detector: Running, server: PackageServer, kind: str, reason: str) -> None:
    version = next_version()
    before = serving(detector)
    if kind == "endless-download":
        path = f"/endless-{version}.zip"
        server.endless.add(path)
        url = server.add(path, b"")
        sent_before = server.sent_total
        detector.edit("model_repository", allow_unverified=True)
        assert wait_until(lambda: detector.runtime.settings.model_repository.allow_unverified,
                          5)
        detector.edit("model", version=version, url=url, content_md5=None)
    else:
        data = {
            "nan-outputs": lambda: package(version, nan_model()),
            "huge-dynamic-input": lambda: package(
                version, dynamic_yolov8_model(ROWS, 2),
                input={**sample_manifest(320, 320)["input"], "width": 12000,
                       "height": 12000}),
            "huge-static-input": lambda: package(
                version, constant_model([("images", "float32", [1, 3, 5000, 5000])],
                                        {"output0": yolov8_output(ROWS, 2)}), input=None),
            "million-labels": lambda: package(version, yolov8_model(ROWS, 2),
                                              [f"label-{i}" for i in range(1_000_000)]),
            "warm-up-eats-memory": lambda: package(version, memory_hog_model(3.0)),
        }[kind]()
        url = server.add(f"/{kind}-{version}.zip", data)
        peak_rss_reset()
        rss_before = peak_rss_mb()
        detector.edit("model", version=version, url=url, content_md5=md5_b64(data))
    state = wait_status(detector, "failed", version, timeout=60)
    assert reason in state["error"], state
    assert serving(detector) == before
    assert detector.post("/score").json["model"]["version"] == before
    assert detector.get("/healthz").status == 200
    assert not (detector.root / "repo" / "graffiti-test" / version).exists()
    downloads = detector.root / "repo" / ".downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
    if kind == "endless-download":
        assert server.sent_total - sent_before < 3 * PACKAGE_MB * 1024 * 1024
        detector.edit("model_repository", allow_unverified=False)
    else:  # what misbehaved did so in the trial process, not in the serving one
        assert peak_rss_mb() - rss_before < 200


def test_an_endless_loop_is_superseded_by_a_later_patch_and_refused_in_time(
        detector: Running, server: PackageServer) -> None:
    endless, good = next_version(), next_version()
    loop_data = package(endless, endless_loop_model())
    detector.edit("model", version=endless, url=server.add(f"/{endless}.zip", loop_data),
                  content_md5=md5_b64(loop_data))
    assert wait_until(lambda: model_state(detector).get("status") == "loading"
                      and model_state(detector).get("desiredVersion") == endless, 30)
    before = serving(detector)
    assert detector.post("/score").json["model"]["version"] == before  # serving meanwhile
    # A later patch is taken at once: the trial (600 s limit here) is killed.
    good_data = package(good, yolov8_model(ROWS, 2))
    detector.edit("model", version=good, url=server.add(f"/{good}.zip", good_data),
                  content_md5=md5_b64(good_data))
    wait_status(detector, "active", good, timeout=30)
    assert serving(detector) == good
    # With a short limit the endless model is refused, and the good one keeps serving.
    detector.edit("inference", load_timeout_s=2)
    assert wait_until(lambda: detector.runtime.settings.inference.load_timeout_s == 2, 5)
    again = next_version()
    loop_data = package(again, endless_loop_model())
    detector.edit("model", version=again, url=server.add(f"/{again}.zip", loop_data),
                  content_md5=md5_b64(loop_data))
    state = wait_status(detector, "failed", again, timeout=60)
    assert "within 2.0 s (inference.load_timeout_s)" in state["error"], state
    assert serving(detector) == good
    detector.edit("inference", load_timeout_s=600)


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (the module and all it started)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_sigterm_during_an_endless_trial_ends_the_module_at_once(tmp_path: Path) -> None:
    base = tmp_path / "graffiti-test-1.0.0.zip"
    base.write_bytes(package_bytes("1.0.0"))
    endless = tmp_path / "endless.zip"
    endless.write_bytes(package("5.0.0", endless_loop_model()))
    twin = tmp_path / "detector.yaml"
    twin.write_text(twin_text(
        inference={"cache_dir": str(tmp_path / "cache"), "load_timeout_s": 600},
        model={"version": "5.0.0", "url": endless.as_uri(), "content_md5": md5_b64(
            endless.read_bytes())},
        model_repository={"dir": str(tmp_path / "repo")}))
    marker = f"DET16_TRIAL_{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "GRAFFITI_"))}
    env[marker] = "1"
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "detector_module", "--config", str(twin),
                             "--port", "0", "--model", str(base), "--data-dir", str(data)],
                            env=env, stderr=subprocess.PIPE)
    try:
        def loading() -> bool:
            try:
                state = json.loads((data / "reported.json").read_text()).get("model", {})
            except (OSError, ValueError):
                return False
            return state.get("status") == "loading"
        assert wait_until(loading, 60)
        assert len(marked_processes(marker)) >= 3  # module, fork server, the trial
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert took < 8, f"the module took {took:.1f} s to stop"
    assert wait_until(lambda: marked_processes(marker) == [], 10), "a trial outlived it"


# -- random manifests and label files against the package loader --------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_keys = st.sampled_from(["schema_version", "name", "version", "format", "model_file",
                         "labels_file", "input", "default_min_score", "class_offset"])
_manifests = st.dictionaries(_keys | st.text(max_size=8), _json, max_size=8)
_inputs = st.dictionaries(st.sampled_from(["width", "height", "layout", "color_order",
                                           "value_range", "resize", "pad_value"]), _json)


@given(manifest=_manifests, input_=_inputs, labels=st.binary(max_size=300)
       | st.lists(st.text(max_size=150), max_size=40).map(lambda ls: "\n".join(ls).encode()),
       raw=st.none() | st.binary(max_size=200))
def test_random_manifests_and_labels_load_or_are_refused_with_a_reason(
        tmp_path_factory: pytest.TempPathFactory, manifest: dict, input_: dict,
        labels: bytes, raw: bytes | None) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-package.zip"
    if input_:
        manifest = {**manifest, "input": input_}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", b"not parsed by the loader")
        zf.writestr("labels.txt", labels)
        zf.writestr("manifest.json", raw if raw is not None else json.dumps(manifest))
    try:
        pkg = load_package(path)
    except PackageError as exc:
        assert str(exc) and len(str(exc)) < 1000
        return
    check_identifier(pkg.name, "name")
    check_identifier(pkg.version, "version")
    assert len(pkg.labels) <= MAX_LABELS
    assert all(label.isprintable() and len(label) <= MAX_LABEL_LENGTH for label in pkg.labels)
    spec = pkg.manifest.input
    assert spec is None or max(spec.width or 0, spec.height or 0) <= 4096


def test_the_detector_still_scores_after_all_of_it(detector: Running) -> None:
    assert call(detector.port, "POST", "/score", jpeg()).status == 200
    assert detector.runtime.workers.not_running() == []
