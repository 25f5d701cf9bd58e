"""Raw exports to a model package the fleet can take: ``graffiti-edge model package``.

An export comes as its tool writes it: a Custom Vision portal zip (``model.onnx``,
``labels.txt``, ``cvexport.manifest``, ``python/`` ...), an Azure ML AutoML output folder
(``model.onnx``, ``labels.json``) or a model file with a labels file. The package built from it
is the model, ``labels.txt`` (whatever form the labels came in) and a ``manifest.json`` with
the name, the version and what the export kept in its own manifest or the command was told
(``format``, ``xy_sigmoid``, ...). Nothing is written
until the package, exactly as it will be written, has been opened by the detector's own loader,
engine and adapters (OpenVINO provider) and has passed the same warm-up and sanity check a
device runs before it serves a model.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector_module.backends import InferenceOptions
from detector_module.engine import load_model, sanity_check
from detector_module.package import (
    MANIFEST,
    MODEL_SUFFIXES,
    ModelPackage,
    PackageError,
    load_package,
)
from detector_module.updates.verify import digests

LABELS = "labels.txt"


@dataclass(frozen=True)
class BuiltPackage:
    """A built package: its file name, what the detector made of it and its checksums."""

    file_name: str
    name: str
    version: str
    format: str
    labels: tuple[str, ...]
    content_md5: str
    sha256: str


def _raw(source: Path, labels: Path | None, staging: Path) -> ModelPackage:
    """The export as the detector's loader reads it; a bare model file is put in a folder
    beside its labels file first (labels.json keeps its JSON form)."""
    if source.suffix.lower() not in MODEL_SUFFIXES:
        if labels is not None:
            raise PackageError("--labels is for a bare model file; this export has its own")
        return load_package(source)
    if labels is None:
        raise PackageError(f"{source.name} is a bare model file: give its labels with --labels")
    folder = staging / "raw"
    folder.mkdir()
    shutil.copyfile(source, folder / source.name)
    shutil.copyfile(labels, folder / ("labels.json" if labels.suffix.lower() == ".json"
                                      else LABELS))
    return load_package(folder)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def build_package(source: Path, *, version: str, name: str | None = None,
                  labels: Path | None = None, manifest: dict[str, Any] | None = None,
                  options: InferenceOptions | None = None) -> tuple[bytes, BuiltPackage]:
    """The package zip's bytes built from a raw export, once the detector has loaded it and
    run it on the sanity image; ``manifest`` adds fields (format, xy_sigmoid, ...).
    Raises PackageError, AdapterError or BackendError with the reason."""
    with tempfile.TemporaryDirectory(prefix="graffiti-package-") as tmp:
        staging = Path(tmp)
        raw = _raw(source, labels, staging)
        fields = {**raw.manifest.model_dump(exclude_none=True, exclude_defaults=True),
                  **(manifest or {})}
        fields.update(schema_version=1, name=name or raw.name, version=version,
                      model_file=raw.model_file, labels_file=LABELS)
        members = {raw.model_file: raw.model, LABELS: ("\n".join(raw.labels) + "\n").encode(),
                   MANIFEST: (json.dumps(fields, indent=2) + "\n").encode()}
        data = _zip(members)
        staged = staging / f"{fields['name']}-{version}.zip"
        staged.write_bytes(data)
        model = load_model(load_package(staged), options or InferenceOptions(cache_dir=None))
        sanity_check(model)
        md5, sha256 = digests(staged)
    built = BuiltPackage(file_name=staged.name, name=model.package.name,
                         version=model.package.version, format=model.adapter.format,
                         labels=model.adapter.labels, content_md5=md5, sha256=sha256)
    return data, built
