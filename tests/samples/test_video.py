"""Generated videos are browser-playable H.264 MP4 and their ground truth lines up."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from samples.cli import main
from samples.world.encode import read_frames
from samples.world.video import generate

FPS = 10


@pytest.fixture(scope="module")
def spraying(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from samples.world.encode import write_mp4

    out = tmp_path_factory.mktemp("video") / "spraying.mp4"
    frames, truth = generate("spraying", 3, 320, 180, FPS, seconds=6.0)
    write_mp4(out, frames, 320, 180, FPS)
    return out, truth.to_json()


def test_video_is_h264_mp4_faststart(spraying: tuple[Path, dict]) -> None:
    path, truth = spraying
    with av.open(str(path)) as container:
        assert "mp4" in container.format.name
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.profile == "Main"
        assert (stream.width, stream.height) == (320, 180)
        assert round(float(stream.average_rate)) == FPS
        keyframes = sorted(
            round(float(p.pts * stream.time_base) * FPS)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        )
    assert keyframes == list(range(0, truth["frame_count"], 2 * FPS))
    head = path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (
        head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat")
    )
    assert sum(1 for _ in read_frames(path)) == truth["frame_count"]


def test_spraying_truth_ranges_match_frames(spraying: tuple[Path, dict]) -> None:
    _, truth = spraying
    appearances = truth["appearances"]
    assert appearances, "a tag must be sprayed"
    tag = appearances[0]
    assert tag["kind"] == "tag"
    assert tag["first_frame"] == round(2.0 * 6.0 / 15.0 * FPS)
    assert tag["last_frame"] == truth["frame_count"] - 1
    for frame in truth["frames"]:
        ids = {o["appearance"] for o in frame["objects"]}
        for a in appearances:
            assert (a["id"] in ids) == (a["first_frame"] <= frame["index"] <= a["last_frame"])
    widths = [
        f["objects"][0]["box"][2] - f["objects"][0]["box"][0]
        for f in truth["frames"]
        if f["objects"]
    ]
    assert widths[-1] > widths[0], "the sprayed tag grows"


def test_clean_scenario_has_no_graffiti(tmp_path: Path) -> None:
    out = tmp_path / "clean.mp4"
    assert (
        main(
            [
                "generate-video",
                "--scenario",
                "clean",
                "--out",
                str(out),
                "--width",
                "256",
                "--height",
                "144",
                "--fps",
                "5",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["appearances"] == []
    assert truth["frame_count"] == 75
    assert all(f["objects"] == [] for f in truth["frames"])


@pytest.mark.parametrize("scenario", ["spraying", "passing"])
def test_rendering_every_nth_frame_gives_those_frames_and_all_the_truth(scenario: str) -> None:
    """Training renders a few frames per video: they must be the very frames of the full
    video, and the truth must still cover every frame (labelled and unlabelled paint)."""
    frames, truth = generate(scenario, 5, 160, 90, FPS, seconds=4.0)
    full = list(frames)
    some, sparse = generate(scenario, 5, 160, 90, FPS, seconds=4.0, every=7)
    picked = list(some)
    assert len(picked) == len(full[::7])
    assert all(np.array_equal(a, b) for a, b in zip(full[::7], picked, strict=True))
    assert (sparse.frames, sparse.unlabelled) == (truth.frames, truth.unlabelled)
