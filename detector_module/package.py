"""Model packages: a zip or a folder with the model file, labels and an optional manifest.

The model repository (``updates/``) unpacks downloaded zips into ``<name>/<version>/``
folders and loads them through :func:`load_package`; the bundled sample model is a zip read
the same way. Zip members are read by name into memory and never extracted here, so a hostile
archive cannot write anywhere (no zip-slip), and sizes are checked before reading.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "manifest.json"
MODEL_SUFFIXES = (".onnx", ".tflite")
LABEL_FILES = ("labels.txt", "labelmap.txt", "coco_classes.txt", "classes.txt")
_VERSIONED = re.compile(r"^(?P<name>.+?)[-_]v?(?P<version>\d+(\.\d+)*)$")


class PackageError(ValueError):
    """A package that cannot be used, with a message that says what is wrong."""


class ManifestInput(BaseModel):
    """Preprocessing facts the model file cannot tell; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    layout: Literal["NCHW", "NHWC"] | None = None
    color_order: Literal["RGB", "BGR"] | None = None
    value_range: tuple[float, float] | None = None
    resize: Literal["letterbox", "stretch"] | None = None
    pad_value: int | None = Field(None, ge=0, le=255)


class Manifest(BaseModel):
    """manifest.json, schema version 1. Unknown keys (description, training) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[1] = 1
    name: str | None = Field(None, min_length=1, max_length=128)
    version: str | None = Field(None, min_length=1, max_length=64)
    format: str | None = None
    model_file: str | None = None
    labels_file: str | None = None
    input: ManifestInput | None = None
    default_min_score: float | None = Field(None, ge=0, le=1)
    class_offset: int | None = Field(None, ge=-1, le=1)


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
    name, version = split_version(source.stem if source.suffix.lower() == ".zip"
                                  else source.name)
    return manifest.name or name, manifest.version or version or "unversioned"


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
    model_file = _pick(names, manifest.model_file and _plain(manifest.model_file, "model_file"),
                       MODEL_SUFFIXES, "model file")
    if model_file is None:
        raise PackageError(f"no .onnx or .tflite model in {source}")
    labels_file = _pick(names, manifest.labels_file and _plain(manifest.labels_file,
                                                                "labels_file"),
                        LABEL_FILES, "labels file")
    labels: tuple[str, ...] = ()
    if labels_file is not None:
        text = read(labels_file).decode("utf-8-sig")
        labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    name, version = _name_version(source, manifest)
    return ModelPackage(name=name, version=version, model_file=model_file,
                        model=read(model_file), labels=labels, manifest=manifest, source=source)


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
