"""Model packages: a zip or a folder with the model file, labels and an optional manifest.

The model repository (``updates/``) unpacks downloaded zips into ``<name>/<version>/``
folders and loads them through :func:`load_package`; the bundled sample model is a zip read
the same way. Zip members are read by name into memory and never extracted here, so a hostile
archive cannot write anywhere (no zip-slip), and sizes are checked before reading.

A package comes from outside, so everything in it that is used later is bounded here, once:
its name and version are identifiers (:mod:`contracts.identifiers`: they name repository
folders and appear in logs), the manifest's input size is at most :data:`MAX_INPUT_SIDE` per
side (a dynamic model told to take 12000x12000 would allocate gigabytes in its warm-up), and
the labels are at most :data:`MAX_LABELS` lines of printable text of at most
:data:`MAX_LABEL_LENGTH` characters (they travel in every answer and message).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.identifiers import BadIdentifier, Identifier, check_identifier

MANIFEST = "manifest.json"
MODEL_SUFFIXES = (".onnx", ".tflite")
# labels.json: Azure ML AutoML's (a JSON list of names, in class id order).
LABEL_FILES = ("labels.txt", "labelmap.txt", "coco_classes.txt", "classes.txt", "labels.json")
#: What a Custom Vision export zip says about itself (ModelFileName, LabelFileName, ...).
CV_EXPORT_MANIFEST = "cvexport.manifest"
_VERSIONED = re.compile(r"^(?P<name>.+?)[-_]v?(?P<version>\d+(\.\d+)*)$")
#: Largest model input side a manifest may ask for (large detection models take 1280-1536).
MAX_INPUT_SIDE = 4096
MAX_LABELS = 10_000
MAX_LABEL_LENGTH = 128


class PackageError(ValueError):
    """A package that cannot be used, with a message that says what is wrong."""


class ManifestInput(BaseModel):
    """Preprocessing facts the model file cannot tell; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int | None = Field(None, gt=0, le=MAX_INPUT_SIDE)
    height: int | None = Field(None, gt=0, le=MAX_INPUT_SIDE)
    layout: Literal["NCHW", "NHWC"] | None = None
    color_order: Literal["RGB", "BGR"] | None = None
    value_range: tuple[float, float] | None = None
    resize: Literal["letterbox", "stretch"] | None = None
    pad_value: int | None = Field(None, ge=0, le=255)


class Manifest(BaseModel):
    """manifest.json, schema version 1. Unknown keys (description, training) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[1] = 1
    name: Identifier | None = None
    version: Identifier | None = None
    format: str | None = None
    model_file: str | None = None
    labels_file: str | None = None
    input: ManifestInput | None = None
    default_min_score: float | None = Field(None, ge=0, le=1)
    class_offset: int | None = Field(None, ge=-1, le=1)
    #: Custom Vision compact exports: whether x/y need a sigmoid before the cell offset
    #: (older exports) or not (the current official sample); None: the adapter's default.
    xy_sigmoid: bool | None = None
    #: Load even when the model's class count differs from the number of labels.
    allow_label_count_mismatch: bool = False


@dataclass(frozen=True)
class ModelPackage:
    """A model ready to open: its bytes, labels and what the manifest says about it."""

    name: str
    version: str
    model_file: str
    model: bytes
    labels: tuple[str, ...]
    manifest: Manifest
    source: Path

    @property
    def runtime(self) -> Literal["onnx", "tflite"]:
        return "tflite" if self.model_file.lower().endswith(".tflite") else "onnx"


def _plain(name: str, what: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise PackageError(f"{what} {name!r} must be a plain file name inside the package")
    return name


def _pick(names: list[str], manifest_choice: str | None, suffixes: tuple[str, ...],
          what: str) -> str | None:
    if manifest_choice is not None:
        if manifest_choice not in names:
            raise PackageError(f"{what} {manifest_choice!r} named in the manifest is missing")
        return manifest_choice
    found = sorted(n for n in names if n.lower().endswith(suffixes))
    if len(found) > 1 and what == "model file":
        raise PackageError(f"several model files ({', '.join(found)}): name one in "
                           f"{MANIFEST} as model_file")
    return found[0] if found else None


def split_version(stem: str) -> tuple[str, str | None]:
    """``graffiti-sample-1.1.0`` (or ``_v1.1.0``) to name and version; a stem without a
    version is all name."""
    match = _VERSIONED.match(stem)
    return (match["name"], match["version"]) if match else (stem, None)


def _name_version(source: Path, manifest: Manifest) -> tuple[str, str]:
    """The manifest's name and version (validated with it), else the file name's."""
    name, version = split_version(source.stem if source.suffix.lower() == ".zip"
                                  else source.name)
    try:
        return (manifest.name or check_identifier(name, "model name from the file name"),
                manifest.version or check_identifier(version or "unversioned",
                                                     "version from the file name"))
    except BadIdentifier as exc:
        raise PackageError(f"{exc}; name the package {MANIFEST} name and version") from None


def _label_lines(text: str, labels_file: str) -> list[str]:
    """A labels.txt's non-empty lines, or the names of a labels.json list."""
    if not labels_file.lower().endswith(".json"):
        return [line for line in text.splitlines() if line.strip()]
    try:
        names = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PackageError(f"{labels_file} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PackageError(f"{labels_file} must be a JSON list of label names")
    return names


def _labels(text: str, labels_file: str) -> tuple[str, ...]:
    """The labels, one per non-empty line (or JSON list entry), bounded in number and length."""
    labels = tuple(line.strip() for line in _label_lines(text, labels_file))
    if len(labels) > MAX_LABELS:
        raise PackageError(f"{labels_file} has {len(labels)} labels, over the limit of "
                           f"{MAX_LABELS}")
    for number, label in enumerate(labels, 1):
        if len(label) > MAX_LABEL_LENGTH or not label.isprintable():
            raise PackageError(f"{labels_file}: label {number} ({label[:40]!r}) is not "
                               f"printable text of at most {MAX_LABEL_LENGTH} characters")
    return labels


def load_package(source: Path, *, max_bytes: int = 512 * 1024 * 1024) -> ModelPackage:
    """Read a package from a ``.zip`` or a folder; raises PackageError with the reason."""
    if source.is_dir():
        members = {p.name: p for p in source.iterdir() if p.is_file()}
        sizes = {n: p.stat().st_size for n, p in members.items()}

        def read(name: str) -> bytes:
            return members[name].read_bytes()
        return _assemble(source, sizes, read, max_bytes)
    if not source.is_file():
        raise PackageError(f"no model package at {source}")
    if not zipfile.is_zipfile(source):
        raise PackageError(f"{source} is neither a folder nor a zip file")
    with zipfile.ZipFile(source) as zf:
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        # Only top-level members count: a package is flat, nested paths are ignored.
        sizes = {n: i.file_size for n, i in infos.items() if "/" not in n and "\\" not in n}

        def read_member(name: str) -> bytes:
            return zf.read(infos[name])
        return _assemble(source, sizes, read_member, max_bytes)


def _assemble(source: Path, sizes: dict[str, int], read: Callable[[str], bytes],
              max_bytes: int) -> ModelPackage:
    total = sum(sizes.values())
    if total > max_bytes:
        raise PackageError(f"package unpacks to {total} bytes, over the {max_bytes} byte limit")
    names = sorted(sizes)
    manifest = Manifest()
    if MANIFEST in sizes:
        try:
            manifest = Manifest.model_validate_json(read(MANIFEST))
        except ValidationError as exc:
            raise PackageError(f"invalid {MANIFEST}: {exc.errors()[0]['loc']}: "
                               f"{exc.errors()[0]['msg']}") from None
    elif CV_EXPORT_MANIFEST in sizes:
        manifest = _from_cv_export(read(CV_EXPORT_MANIFEST), set(names))
    model_file = _pick(names, manifest.model_file and _plain(manifest.model_file, "model_file"),
                       MODEL_SUFFIXES, "model file")
    if model_file is None:
        raise PackageError(f"no .onnx or .tflite model in {source}")
    labels_file = _pick(names, manifest.labels_file and _plain(manifest.labels_file,
                                                                "labels_file"),
                        LABEL_FILES, "labels file")
    labels: tuple[str, ...] = ()
    if labels_file is not None:
        try:
            text = read(labels_file).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PackageError(f"{labels_file} is not UTF-8 text: {exc.reason} at byte "
                               f"{exc.start}") from None
        labels = _labels(text, labels_file)
    name, version = _name_version(source, manifest)
    return ModelPackage(name=name, version=version, model_file=model_file,
                        model=read(model_file), labels=labels, manifest=manifest, source=source)


def _from_cv_export(data: bytes, names: set[str]) -> Manifest:
    """A Custom Vision export zip as the portal writes it: its cvexport.manifest names the
    model and labels files (a JSON object; anything unreadable in it is simply not used)."""
    try:
        export = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Manifest()
    if not isinstance(export, dict):
        return Manifest()
    chosen = {key: export.get(field) for key, field in
              (("model_file", "ModelFileName"), ("labels_file", "LabelFileName"))}
    return Manifest(**{k: v for k, v in chosen.items() if isinstance(v, str) and v in names})


def _semver_key(path: Path) -> tuple[int, ...]:
    _, version = split_version(path.stem)
    return tuple(int(p) for p in version.split(".")) if version else ()


def bundled_sample() -> Path | None:
    """The newest ``samples/models/graffiti-sample-<version>.zip`` shipped with the product."""
    try:
        folder = Path(str(resources.files("samples") / "models"))
    except ModuleNotFoundError:
        return None
    found = sorted(folder.glob("graffiti-sample-*.zip"), key=_semver_key)
    return found[-1] if found else None
