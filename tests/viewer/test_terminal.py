"""``graffiti-edge clips list|download`` against the viewer tests' clips in Azurite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cli.main import main
from tests.support.azurite import Azurite

pytestmark = pytest.mark.integration


@pytest.fixture
def storage_env(azurite: Azurite, clip_ids: list[str],
                monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("GRAFFITI_VIEWER_CONNECTION_STRING", azurite.connection_string)
    return clip_ids


def test_clips_list_is_newest_first_and_filters(storage_env: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clips", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    ids = [row.split()[-1] for row in rows]
    assert sorted(ids) == sorted(storage_env)
    days = [clip_id.split("/")[2:5] for clip_id in ids]
    assert days == sorted(days, reverse=True)
    assert main(["clips", "list", "--train", "train-0002", "--min-score", "0.75"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert {row.split()[-1].split("_", 1)[1] for row in rows} == {"ev-b1", "ev-b3"}
    assert main(["clips", "list", "--carriage", "4022"]) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert " 4022 right " in row and row.endswith("_ev-a4")
    assert main(["clips", "list", "--train", "../etc"]) == 2
    assert "not a valid id" in capsys.readouterr().err


def test_clips_download_writes_the_clip_files(storage_env: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    wanted = next(i for i in storage_env if i.endswith("_ev-a1"))
    assert main(["clips", "download", wanted, "--to", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ev-a1.jpg", "ev-a1.json", "ev-a1.mp4"]
    sidecar = json.loads((tmp_path / "ev-a1.json").read_text())
    video = (tmp_path / "ev-a1.mp4").read_bytes()
    assert sidecar["video"]["sha256"] == hashlib.sha256(video).hexdigest()
    assert main(["clips", "download", "train-0001/cam-01/2026/11/20/081500_nope",
                 "--to", str(tmp_path)]) == 1
    assert "no clip" in capsys.readouterr().err


def test_clips_without_a_connection_string_say_so(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv("GRAFFITI_VIEWER_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("UPLOADER_UPLOAD__CONNECTION_STRING", raising=False)
    assert main(["clips", "list"]) == 2
    assert "connection string" in capsys.readouterr().err
    assert main(["clips", "list", "--demo", "--data-dir", str(tmp_path)]) == 1
    assert "run `graffiti-edge demo` first" in capsys.readouterr().err
