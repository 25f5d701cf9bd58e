"""Fixtures for the viewer tests: sample-world clips in Azurite and a viewer process on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.azurite import Azurite
from tests.viewer.server import ViewerProcess
from tests.viewer.world import make_clips, upload

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "viewer"


@pytest.fixture(scope="session")
def clip_ids(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Nine complete clips (three trains, several cameras and days, one interrupted), rendered
    once."""
    clips = make_clips(tmp_path_factory.mktemp("viewer-clips"))
    return upload(azurite.connection_string, clips)


@pytest.fixture(scope="session")
def viewer(azurite: Azurite, clip_ids: list[str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerProcess]:
    folder = tmp_path_factory.mktemp("viewer-log")
    server = ViewerProcess(folder / "viewer.log", azurite.connection_string)
    yield server
    server.stop()
    assert "AccountKey=" not in server.log().replace("AccountKey=***", "")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
