"""Where a module keeps its files: every relative path in its settings is under its --data-dir.

One rule for every folder setting of every module (the model repository, the OpenVINO cache,
the outbox), applied where settings are built (:class:`config.store.SettingsStore`), so no
service joins paths itself and two modules started with different ``--data-dir`` never share
state through a default. An absolute path is taken as it is: that is how a deployment points
a module at a shared volume (the outbox on IoT Edge, ``graffiti-edge up``'s shared outbox).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from config.fields import Section

S = TypeVar("S", bound=Section)


def under_data_dir(settings: S, data_dir: Path) -> S:
    """``settings`` with each relative folder setting joined to ``data_dir``."""
    updates: dict[str, object] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, Section):
            updates[name] = under_data_dir(value, data_dir)
        elif isinstance(value, Path) and not value.is_absolute():
            updates[name] = data_dir / value
    return settings.model_copy(update=updates)
