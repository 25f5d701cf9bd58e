"""Entry point: `uploader-module` or `python -m uploader_module`."""

from __future__ import annotations

from collections.abc import Sequence

from config.registry import UPLOADER
from edge_link.runtime import module_main
from uploader_module.service import UploaderService


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(UPLOADER, lambda runtime: [UploaderService(runtime)], argv)


if __name__ == "__main__":
    raise SystemExit(main())
