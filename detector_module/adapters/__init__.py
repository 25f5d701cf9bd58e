"""Model formats: one adapter per format behind one interface (image in, candidates out).

Importing this package registers every built-in adapter; :func:`adapter_for` picks one from
the package manifest's ``format`` or, failing that, from the model's own signature.
"""

from detector_module.adapters import customvision, ssd, tinyyolo, yolo
from detector_module.adapters.base import (
    Adapter,
    AdapterError,
    adapter_for,
    known_formats,
    register,
)

__all__ = ["Adapter", "AdapterError", "adapter_for", "known_formats", "register",
           "customvision", "ssd", "tinyyolo", "yolo"]
