"""The sample-world command line: help text and argument errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from samples.cli import build_parser, latest_package, main

COMMANDS = ("generate-images", "generate-video", "export-jsonl", "train", "evaluate")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_unknown_scenario_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate-video", "--scenario", "nope", "--out", "x.mp4"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["generate-video", "--out", "demo.mp4"])
    assert (args.scenario, args.width, args.height, args.fps) == ("demo", 1280, 720, 25)


def test_run_time_modules_do_not_import_torch() -> None:
    """Only ``train`` may pull in torch; everything the product or a demo runs must not."""
    code = (
        "import sys, samples.cli, samples.product, samples.evaluate, samples.scoring, "
        "samples.report, samples.dataset, samples.world.video; sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_latest_package_is_the_highest_version() -> None:
    assert latest_package().name == "graffiti-sample-1.1.0.zip"
