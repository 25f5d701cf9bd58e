"""The detection contract (version 1), shared by detector, camera, clips, messages and samples.

``box`` is ``(x1, y1, x2, y2)`` normalised to the original image, 0..1, top-left origin. One
definition, so the detector's answer and what the camera and the evaluation read cannot drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass


@dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class Detection:
    """One object found in an image. Validated when built (a pydantic dataclass, so it is
    still built positionally in the detector's hot path, at about 1.5 us each): a score
    outside 0..1 from a model or from a detector's answer is an error where it is made, not in
    a clip writer later."""

    label: str
    class_id: int = Field(ge=0)
    score: float = Field(ge=0, le=1)
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in 0..1.")

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
