"""The adapter interface and registry (one small class per model format, Frigate-style)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar

import numpy as np

from detector_module.backends import Backend, TensorInfo
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec, prepare
from detector_module.package import ModelPackage


class AdapterError(ValueError):
    """The model's format is unknown or its signature does not fit the format."""


class Adapter(ABC):
    """Turns an RGB uint8 HxWx3 image into candidates for one model format.

    Subclasses say how to recognise their format from the model's signature, what input the
    model wants (manifest fields override), and how to read its outputs. Everything after
    that (thresholds, NMS, the cap) is shared post-processing.
    """

    format: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str]

    def __init__(self, backend: Backend, package: ModelPackage) -> None:
        self.backend = backend
        self.package = package
        self.labels = package.labels
        self.spec = self._with_manifest(self.default_spec())

    @classmethod
    @abstractmethod
    def recognises(cls, backend: Backend) -> bool:
        """Whether a model's inputs, outputs and metadata are this format's signature."""

    @abstractmethod
    def default_spec(self) -> InputSpec:
        """The input the model wants when the manifest says nothing."""

    @abstractmethod
    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        """Raw outputs to candidates; rows scoring below ``floor`` may be dropped early."""

    def class_count(self) -> int | None:
        """How many labels the model's class ids index, read from its output shapes; None
        when the outputs do not say (class ids come as values, not as a tensor axis)."""
        return None

    def feeds(self, tensor: np.ndarray, geometry: Geometry) -> dict[str, np.ndarray]:
        return {self.backend.inputs[0].name: tensor}

    def run(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        """Preprocess and run one RGB uint8 HxWx3 image: the raw outputs and the geometry."""
        tensor, geometry = prepare(image, self.spec)
        return self.backend.run(self.feeds(tensor, geometry)), geometry

    def infer(self, image: np.ndarray, floor: float = 0.0) -> Candidates:
        """Preprocess, run and decode one RGB uint8 HxWx3 image."""
        return self.decode(*self.run(image), floor)

    def _with_manifest(self, spec: InputSpec) -> InputSpec:
        given = self.package.manifest.input
        if given is None:
            return spec
        overrides = {k: v for k, v in given.model_dump().items() if v is not None}
        return replace(spec, **overrides)

    def image_spec(self, default_size: tuple[int, int], *, layout: str = "NCHW",
                   **fields: object) -> InputSpec:
        """An InputSpec sized from the first input's static shape, else ``default_size``."""
        info = self.backend.inputs[0]
        w, h = spatial_size(info, layout) or default_size
        dtype = "uint8" if info.dtype == "uint8" else info.dtype
        return InputSpec(width=w, height=h, layout=layout, dtype=dtype,  # type: ignore[arg-type]
                         **fields)  # type: ignore[arg-type]


def spatial_size(info: TensorInfo, layout: str) -> tuple[int, int] | None:
    """(width, height) of a 4-D image input when both are static."""
    if len(info.shape) != 4:
        return None
    h, w = (info.shape[2], info.shape[3]) if layout == "NCHW" else (info.shape[1], info.shape[2])
    return (w, h) if w and h else None


_REGISTRY: list[type[Adapter]] = []


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make a format known (detection tries formats in registration order)."""
    _REGISTRY.append(cls)
    return cls


def known_formats() -> list[str]:
    return [cls.format for cls in _REGISTRY]


def _signature(backend: Backend) -> str:
    def show(infos: list[TensorInfo]) -> str:
        return ", ".join(f"{i.name}{list(i.shape)}" for i in infos)
    return f"inputs [{show(backend.inputs)}], outputs [{show(backend.outputs)}]"


def adapter_for(backend: Backend, package: ModelPackage) -> Adapter:
    """The adapter named by the manifest's ``format``, else the one whose signature fits."""
    return check_labels(_chosen(backend, package)(backend, package))


def _chosen(backend: Backend, package: ModelPackage) -> type[Adapter]:
    wanted = package.manifest.format
    if wanted is not None:
        key = wanted.lower().replace("_", "-")
        for cls in _REGISTRY:
            if key == cls.format or key in cls.aliases:
                return cls
        raise AdapterError(f"unknown model format {wanted!r} in the manifest; known formats: "
                           f"{', '.join(known_formats())}")
    for cls in _REGISTRY:
        if cls.recognises(backend):
            return cls
    names = {o.name.split(":")[0] for o in backend.outputs}
    if {"boxes_0", "labels_0", "scores_0"} <= names:
        raise AdapterError(
            "this is an Azure ML AutoML Faster R-CNN or RetinaNet export (outputs boxes_0, "
            "labels_0, scores_0), which the detector cannot run: no adapter decodes its "
            "per-image outputs and the input wants ImageNet mean/std normalisation, which the "
            "preprocessing does not have. Train or export the AutoML model as yolov5 instead")
    raise AdapterError(f"cannot tell the model format from its signature ({_signature(backend)}"
                       f"): set \"format\" in manifest.json to one of "
                       f"{', '.join(known_formats())}")


def check_labels(adapter: Adapter) -> Adapter:
    """Refuse a model whose class count differs from its labels: a detection would carry
    the wrong name (or none), silently. ``allow_label_count_mismatch`` in the manifest lets
    a deliberate mismatch through."""
    classes = adapter.class_count()
    labels = len(adapter.labels)
    if (classes is not None and classes != labels
            and not adapter.package.manifest.allow_label_count_mismatch):
        raise AdapterError(
            f"the model has {classes} classes but its labels file has {labels} labels: fix "
            f"the labels, or set \"allow_label_count_mismatch\": true in manifest.json")
    return adapter
