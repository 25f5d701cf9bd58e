"""Model package (zip with model, labels.txt and manifest.json): build, read, validate.

Members are read by name into memory, never extracted, so a hostile archive cannot write
outside a directory (no zip-slip to guard against in the first place).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST = "manifest.json"


class InputSpec(BaseModel):
    """What the consumer must do to an image before calling the model."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(gt=0, multiple_of=32)
    height: int = Field(gt=0, multiple_of=32)
    layout: Literal["NCHW"] = "NCHW"
    color_order: Literal["RGB", "BGR"] = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: int = Field(default=114, ge=0, le=255)


class TrainingInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    seed: int
    images: int = Field(gt=0)
    epochs: int = Field(gt=0)
    command: str


class Manifest(BaseModel):
    """manifest.json, schema version 1 (documented in docs/model.md)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    format: Literal["yolov8"] = "yolov8"
    model_file: str = "model.onnx"
    labels_file: str = "labels.txt"
    input: InputSpec
    default_min_score: float = Field(gt=0.0, lt=1.0)
    description: str
    training: TrainingInfo

    @field_validator("model_file", "labels_file")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a plain file name inside the package")
        return value


def package_path(directory: Path, name: str, version: str) -> Path:
    return directory / f"{name}-{version}.zip"


def write_package(path: Path, manifest: Manifest, model: bytes, labels: list[str]) -> Path:
    """Write the zip deterministically (fixed member order and timestamps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {
        manifest.model_file: model,
        manifest.labels_file: ("\n".join(labels) + "\n").encode(),
        MANIFEST: (json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n").encode(),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def read_package(path: Path) -> tuple[Manifest, bytes, list[str]]:
    """Manifest (validated), model bytes and labels of a package."""
    with zipfile.ZipFile(path) as zf:
        manifest = Manifest.model_validate_json(zf.read(MANIFEST))
        model = zf.read(manifest.model_file)
        labels = [line.strip() for line in zf.read(manifest.labels_file).decode().splitlines()]
    return manifest, model, [label for label in labels if label]
