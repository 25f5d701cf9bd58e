"""`graffiti-edge demo` as a new user runs it, on a short video so the test stays quick."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from local_run.demo import DemoOptions, run_demo
from local_run.processes import free_port, port_is_free
from samples.world.encode import write_mp4
from samples.world.video import generate
from tests.test_supervisor import alive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15 s of a train with graffiti passing (one sighting), as the demo video is made."""
    folder = tmp_path_factory.mktemp("video")
    frames, truth = generate("passing", 10, 640, 360, 25)
    video = folder / "passing.mp4"
    write_mp4(video, frames, 640, 360, 25, bframes=0)
    video.with_suffix(".json").write_text(json.dumps(truth.to_json()))
    return video


def demo_config(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The shipped twin files with the camera and detector on free ports."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config, ignore=shutil.ignore_patterns("*.py", "__*"))
    ports = {"camera": free_port(), "detector": free_port()}
    camera = yaml.safe_load((config / "camera.yaml").read_text())
    camera["stream"]["detect_url"] = f"rtsp://127.0.0.1:{ports['camera']}/camera"
    camera["sampling"] = {"detector_url": f"http://127.0.0.1:{ports['detector']}"}
    (config / "camera.yaml").write_text(yaml.safe_dump(camera))
    detector = yaml.safe_load((config / "detector.yaml").read_text())
    detector["server"]["port"] = ports["detector"]
    (config / "detector.yaml").write_text(yaml.safe_dump(detector))
    return config, ports


def module_pids(out: str) -> list[int]:
    return [int(line.split(" pid ")[1].split()[0]) for line in out.splitlines()
            if " pid " in line]


def test_demo_runs_the_video_to_blob_storage_and_leaves_nothing(
        tmp_path: Path, short_video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, ports = demo_config(tmp_path)
    assert run_demo(DemoOptions(config_dir=config, data_root=tmp_path / "data",
                                video=short_video)) == 0
    out = capsys.readouterr().out
    assert "rejected: trigger.min_score = 7" in out and "applied live, no restart" in out
    assert "stream online rtsp://127.0.0.1" in out
    assert out.count("event started") == 1 and out.count("clip written") == 1
    assert "uploaded graffiti-clips/demo-train/depot-cam-1/" in out
    assert "ground truth: 4 graffiti appearances in 1 sightings; 1 found" in out
    assert "does not cover" not in out and "no event" not in out, out
    assert "[6/6] stopped: detector exit 0, uploader exit 0, camera exit 0" in out
    clips = sorted(p.suffix for p in (tmp_path / "data" / "demo" / "clips").iterdir())
    assert clips == [".jpg", ".json", ".mp4"]
    assert not any((tmp_path / "data" / "demo" / "outbox").glob("*.mp4"))
    for port in ports.values():
        assert port_is_free(port), f"something still listens on {port}"
    pids = module_pids(out)
    assert len(pids) == 3 and not any(alive(pid) for pid in pids)


def test_ctrl_c_ends_every_process_and_keeps_the_clip(tmp_path: Path,
                                                      short_video: Path) -> None:
    config, ports = demo_config(tmp_path)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "cli.main", "demo", "--config-dir", str(config),
               "--data-dir", str(data), "--video", str(short_video)]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:  # until the first event is under way
            lines.append(line)
            if "event started" in line:
                break
        time.sleep(1.0)
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    out = "".join(lines) + rest
    assert demo.returncode == 1, out
    assert "interrupted: stopping" in out
    assert "[6/6] stopped: detector exit 0, uploader exit 0, camera exit 0" in out, out
    azurite_port = int(out.split("stand-in) on 127.0.0.1:")[1].split()[0])
    for port in [*ports.values(), azurite_port]:
        assert port_is_free(port), f"something still listens on {port}"
    assert not any(alive(pid) for pid in module_pids(out))
    # The event under way was cut at the stop and its clip kept for the next run.
    outbox = data / "demo" / "outbox"
    uploaded = out.count("uploaded graffiti-clips/")
    assert uploaded + len(list(outbox.glob("*.mp4"))) == 1, out


def test_a_broken_twin_file_is_named_and_nothing_starts(
        tmp_path: Path, short_video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = demo_config(tmp_path)
    camera = config / "camera.yaml"
    camera.write_text(camera.read_text().replace("min_score: 0.65", "min_score: 7"))
    (config / "uploader.yaml").write_text("upload: [unclosed\n")
    assert run_demo(DemoOptions(config_dir=config, data_root=tmp_path / "data",
                                video=short_video)) == 2
    out = capsys.readouterr().out
    assert "nothing was started" in out
    assert f"{camera}:" in out and "trigger.min_score" in out and "(got 7)" in out
    assert "uploader.yaml" in out
    assert not (tmp_path / "data" / "demo").exists()
