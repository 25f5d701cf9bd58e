"""Settings sections that more than one module uses."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from config.fields import Section, setting


class LoggingSettings(Section):
    """How the module writes its log. Applied live."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", "Lowest level written to the log."
    )
    format: Literal["kv", "json"] = setting(
        "kv",
        "One line per event: `kv` (key=value, easy to read and grep) or `json` "
        "(for log shippers).",
    )


class BackoffSettings(Section):
    """Retry pacing for a dependency that may be away for hours (detector, blob endpoint)."""

    initial_s: float = setting(1.0, "First wait after a failure.", unit="s", gt=0, le=3600)
    max_s: float = setting(60.0, "Longest wait between attempts.", unit="s", gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> BackoffSettings:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")
        return self
