"""The console scripts: graffiti-edge config check/schema/method and the module entry points."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import installed_groups, main
from local_run.processes import free_port
from tests.support.iothub import HubResponder

BIN = Path(sys.executable).parent


def test_config_check_names_every_error_with_its_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "camera.yaml"
    path.write_text(
        "trigger:\n"
        "  min_scor: 0.5\n"
        "  include_zones:\n"
        "    - [[0, 0], [2, 0], [1, 1]]\n"
        "sampling:\n"
        "  detect_fps: -1\n"
        "stream:\n"
        "  transport: http\n"
    )
    assert main(["config", "check", str(path), "--module", "camera"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        f"{path}:2: trigger.min_scor: unknown key 'min_scor' (did you mean 'min_score'?) "
        "(got 0.5)",
        f"{path}:4: trigger.include_zones.0.1.0: Input should be less than or equal to 1 "
        "(got 2)",
        f"{path}:6: sampling.detect_fps: Input should be greater than 0 (got -1)",
        f"{path}:8: stream.transport: Input should be 'tcp' or 'udp' (got 'http')",
    ]
    assert out[4] == f"{path}: 4 error(s) for the camera module"


def test_config_check_accepts_a_valid_file_and_reports_yaml_syntax(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "uploader.yaml"
    good.write_text("upload:\n  container: clips\noutbox:\n  quota_mb: 100\n")
    assert main(["config", "check", str(good), "--module", "uploader"]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("upload:\n  container: [clips\n")
    assert main(["config", "check", str(broken), "--module", "uploader"]) == 1
    assert f"{broken}:3: <document>: not valid YAML" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["camera", "detector", "uploader"])
def test_config_schema_is_json_schema_with_units(module: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema", "--module", module]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == f"graffiti-edge {module} module settings"
    assert schema["additionalProperties"] is False
    units = [p for d in schema["$defs"].values() for p in d["properties"].values()
             if "x-unit" in p]
    assert units, "fields with units carry them in the schema"


@pytest.mark.parametrize("command", ["graffiti-edge", "camera-module", "detector-module",
                                     "uploader-module"])
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_module_process_runs_locally_answers_methods_and_stops_on_sigterm(tmp_path: Path) -> None:
    twin = tmp_path / "uploader.yaml"
    twin.write_text("outbox:\n  quota_mb: 10\n")
    data = tmp_path / "data"
    proc = subprocess.Popen([str(BIN / "uploader-module"), "--config", str(twin), "--data-dir",
                             str(data)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (data / "reported.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = subprocess.run([str(BIN / "graffiti-edge"), "method", "ping", "--module",
                                 "uploader", "--data-dir", str(data)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["payload"]["module"] == "uploader"
        reported = json.loads((data / "reported.json").read_text())
        assert reported["settings"]["inForce"]["outbox"]["quota_mb"] == 10
        assert reported["module"]["link"] == "local"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "module.started" in err and "module.stopped" in err


def test_module_that_cannot_start_its_service_exits_1_naming_why(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "detector-module"), "--data-dir", str(tmp_path), "--port", str(port),
             "--twin-wait", "1"], capture_output=True, text=True, timeout=60,
            env={"DETECTOR_SERVER__HOST": "127.0.0.1", "PATH": "/usr/bin"})
    assert result.returncode == 1, result.stderr
    assert "module.start_failed" in result.stderr and str(port) in result.stderr
    assert "module.stopped" in result.stderr and "Traceback" not in result.stderr


def test_module_exits_2_naming_a_bad_environment_value(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "camera-module"), "--data-dir", str(tmp_path)], capture_output=True,
        text=True, timeout=60, env={"CAMERA_SAMPLING__DETECT_FPS": "0", "PATH": "/usr/bin"})
    assert result.returncode == 2
    assert "sampling.detect_fps" in result.stderr and "env" in result.stderr


@pytest.mark.integration
def test_module_process_on_the_hub_reports_settings(hub: HubResponder, hub_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    hub.desired = {"thresholds": {"nms_iou": 0.3}}
    proc = subprocess.Popen([str(BIN / "detector-module"), "--data-dir", str(tmp_path),
                             "--port", str(free_port())],
                            env={**hub_env, "PATH": "/usr/bin"}, stderr=subprocess.PIPE,
                            text=True)
    try:
        hub.wait_for(lambda: hub.reported.get("settings", {}).get("inForce", {})
                     .get("thresholds", {}).get("nms_iou") == 0.3, 30, "reported settings")
        hub.wait_for(lambda: "module" in hub.reported, 30, "reported module section")
        assert hub.reported["module"]["link"] == "iothub"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_samples_commands_are_reachable_from_the_umbrella_cli(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["samples", "generate-video", "--help"])
    assert info.value.code == 0
    assert "--scenario" in capsys.readouterr().out


def test_a_group_whose_package_is_not_installed_is_left_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a module image, which holds neither local_run nor viewer."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "viewer" else real(name, *rest))
    names = [group.__name__ for group in installed_groups()]
    assert "viewer.cli" not in names and "config.commands" in names


def test_an_import_error_inside_an_installed_package_is_not_hidden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cli.main.GROUPS", ("config.commands", "config.missing_commands"))
    with pytest.raises(ModuleNotFoundError, match="config.missing_commands"):
        list(installed_groups())
