"""What an operator sends to roll a built package out: the twin patch and the layered deployment.

The patch is ``properties.desired.model`` of ``detector_module`` (the module's name in
deployment.template.json), in the keys :class:`config.detector.DesiredModel` reads; a layered
deployment sets only that path, above the base deployment's priority band (10-19, see
docs/deploy.md), so it never touches the detector's other settings.
"""

from __future__ import annotations

import shlex
from typing import Any

from detector_module.packaging import BuiltPackage

MODULE = "detector_module"
#: The blob's URL with a read-only SAS; the operator fills it in after uploading the zip.
URL_PLACEHOLDER = "https://<storage-account>.blob.core.windows.net/models/{file}?<SAS token>"
#: Model layers sit above the base deployments' band (10-19).
LAYER_PRIORITY = 20


def twin_patch(built: BuiltPackage, url: str | None = None) -> dict[str, Any]:
    """``{"model": {...}}``: version, URL, ContentMD5 (base64, as Azure writes it), sha256."""
    return {"model": {"version": built.version,
                      "url": url or URL_PLACEHOLDER.format(file=built.file_name),
                      "ContentMD5": built.content_md5, "sha256": built.sha256,
                      "file_name": built.file_name}}


def layered_content(patch: dict[str, Any]) -> dict[str, Any]:
    """The ``--content`` of a layered deployment that sets only the detector's model."""
    return {"content": {"modulesContent": {MODULE: {"properties.desired.model":
                                                    patch["model"]}}}}


def deployment_command(built: BuiltPackage, content_file: str, *,
                       target_condition: str = "tags.fleet='graffiti'",
                       priority: int = LAYER_PRIORITY) -> str:
    """The ``az iot edge deployment create --layered`` command for the whole fleet."""
    deployment_id = f"model-{built.name}-{built.version}".lower().replace(".", "-")
    words = ["az", "iot", "edge", "deployment", "create", "--hub-name", "$HUB",
             "--deployment-id", deployment_id, "--layered", "--content", content_file,
             "--target-condition", target_condition, "--priority", str(priority)]
    return " ".join(w if w == "$HUB" else _quote(w) for w in words)


def _quote(word: str) -> str:
    """Shell quoting that keeps a target condition readable: "tags.fleet='graffiti'"."""
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)
