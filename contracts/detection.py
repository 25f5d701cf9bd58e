"""The detection contract (ARCHITECTURE.md, version 1), shared by detector, camera and samples.

``box`` is ``(x1, y1, x2, y2)`` normalised to the original image, 0..1, top-left origin. One
definition, so the detector's answer and what the camera and the evaluation read cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Detection:
    """One object found in an image."""

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        """Fraction of the image the box covers."""
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "class_id": self.class_id, "score": round(self.score, 6),
                "box": [round(v, 6) for v in self.box]}
