"""Entry point: `uploader-module` or `python -m uploader_module`."""

from __future__ import annotations

from collections.abc import Sequence

from config.registry import UPLOADER
from config.uploader import UploaderSettings
from edge_link.runtime import ModuleRuntime, ModuleService, module_main
from uploader_module.service import UploaderService

DESCRIPTION = (
    "Uploads finished clips from the outbox to Azure Blob Storage on IoT Edge, losing none "
    "while offline."
)


def build(runtime: ModuleRuntime[UploaderSettings]) -> list[ModuleService[UploaderSettings]]:
    """The module's own services, started once its settings are in force."""
    return [UploaderService(runtime)]


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(UPLOADER, DESCRIPTION, build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
