"""`graffiti-edge up` and the supervisor: modules as processes, all ended afterwards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from local_run.demo import run_up
from local_run.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped twin files, with the detector on a free port so tests never collide."""
    from local_run.processes import free_port

    folder = tmp_path / "config"
    folder.mkdir()
    for twin in ROOT.glob("config/*.yaml"):
        shutil.copy(twin, folder / twin.name)
    detector = folder / "detector.yaml"
    detector.write_text(detector.read_text().replace("port: 8080", f"port: {free_port()}"))
    return folder


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_stops_every_module_after_duration(tmp_path: Path) -> None:
    assert run_up(["uploader"], config_dir=ROOT / "config", data_root=tmp_path,
                  duration_s=0.5) == 0
    assert (tmp_path / "uploader" / "reported.json").exists()


def test_up_command_defaults_to_all_modules(tmp_path: Path, config_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    assert main(["up", "--duration", "0.5", "--data-dir", str(tmp_path / "data"),
                 "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "stopped: detector exit 0, uploader exit 0, camera exit 0" in out
    data = (tmp_path / "data").absolute()

    def in_force(module: str) -> dict:
        return json.loads((data / module / "reported.json").read_text())["settings"]["inForce"]
    # The camera and the uploader meet in one outbox; the rest of the state is per module.
    assert in_force("camera")["recording"]["outbox_dir"] == str(data / "outbox")
    assert in_force("uploader")["outbox"]["dir"] == str(data / "outbox")
    detector = in_force("detector")
    assert detector["model_repository"]["dir"] == str(data / "detector" / "models")
    assert detector["inference"]["cache_dir"] == str(data / "detector" / "ov_cache")
    with pytest.raises(SystemExit):
        main(["up", "bogus"])


def test_supervisor_kills_a_module_that_ignores_sigterm(tmp_path: Path) -> None:
    twins = tmp_path / "twins"
    twins.mkdir()
    shutil.copy(ROOT / "config" / "uploader.yaml", twins / "uploader.yaml")
    supervisor = Supervisor(["uploader"], config_dir=twins, data_root=tmp_path)
    supervisor.start()
    supervisor.wait_ready()
    pid = supervisor.running[0].process.pid
    os.kill(pid, 19)  # SIGSTOP: a hung module cannot handle SIGTERM
    codes = supervisor.stop(grace_s=1.0)
    assert codes == {"uploader": -9}
    assert not alive(pid)
