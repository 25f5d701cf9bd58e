"""Depot idle mode's decisions, keyframe by keyframe, on a made-up clock."""

from __future__ import annotations

from typing import Any

from camera_module.decode_mode import DecodeMode
from config.camera import SamplingSettings


def _mode(**sampling: Any) -> tuple[DecodeMode, dict[str, SamplingSettings]]:
    current = {"sampling": SamplingSettings(**{"idle_quiet_s": 10, **sampling})}
    return DecodeMode(lambda: current["sampling"], lambda: "cam-1", 0.0), current


def _keyframes(mode: DecodeMode, start: float, end: float, gop: float = 2.0) -> list[str]:
    values, t = [], start
    while t < end:
        values.append(mode.at_keyframe(t, t))
        t += gop
    return values


def test_a_quiet_camera_goes_idle_and_a_sighting_wakes_it_at_the_next_keyframe() -> None:
    mode, _ = _mode()
    assert _keyframes(mode, 0, 10) == ["DEFAULT"] * 5  # quiet, but not yet for 10 s
    assert mode.reason == "starting" and mode.gop_s == 2.0
    assert mode.at_keyframe(10, 10) == "NONKEY"
    assert (mode.mode, mode.reason, mode.changes) == ("keyframes", "quiet for 10 s", 1)
    mode.stir(10.1)  # the detector saw something in the keyframe at 10
    assert mode.mode == "keyframes", "a predicted frame cannot be decoded mid-GOP"
    assert mode.at_keyframe(12, 12) == "DEFAULT"
    assert (mode.mode, mode.reason, mode.changes) == ("full", "activity", 2)
    mode.stir(15)
    assert _keyframes(mode, 14, 25) == ["DEFAULT"] * 6, "full until 10 s after the last stir"
    assert mode.at_keyframe(26, 26) == "NONKEY" and mode.changes == 3
    assert mode.report() == {"decodeMode": "keyframes", "decodeReason": "quiet for 10 s",
                             "gopS": 2.0, "decodeModeChanges": 3}


def test_a_long_gop_keeps_full_decoding_and_says_why() -> None:
    mode, current = _mode(idle_max_gop_s=4)
    assert _keyframes(mode, 0, 60, gop=5.0) == ["DEFAULT"] * 12
    assert mode.reason == "GOP 5.0 s is longer than idle_max_gop_s (4 s)"
    current["sampling"] = SamplingSettings(idle_quiet_s=10, idle_max_gop_s=6)
    assert mode.at_keyframe(60, 60) == "NONKEY", "a raised bound applies at the next keyframe"


def test_one_short_interval_does_not_hide_a_long_gop() -> None:
    """An encoder's scene-cut keyframe makes one interval short; the longest recent counts."""
    mode, _ = _mode(idle_max_gop_s=4)
    for t in (0, 6, 12, 13, 19, 25):
        assert mode.at_keyframe(t, t) == "DEFAULT"
    assert mode.gop_s == 6.0 and mode.reason.startswith("GOP 6.0 s")


def test_a_reconnect_is_not_a_gop_and_idle_mode_off_decodes_everything() -> None:
    mode, current = _mode()
    _keyframes(mode, 0, 12)
    assert mode.mode == "keyframes"
    mode.new_session()
    assert mode.at_keyframe(40, 40) == "NONKEY" and mode.gop_s == 2.0, "the gap is not a GOP"
    current["sampling"] = SamplingSettings(idle_mode="off")
    assert mode.at_keyframe(42, 42) == "DEFAULT"
    assert (mode.mode, mode.reason) == ("full", "idle_mode off")


def test_a_stream_without_a_second_keyframe_yet_is_decoded_in_full() -> None:
    mode, _ = _mode()
    assert mode.at_keyframe(100, 100) == "DEFAULT"
    assert mode.reason == "GOP not measured yet" and mode.gop_s is None


def test_a_sighting_wakes_the_camera_even_when_the_quiet_period_is_shorter_than_a_gop() -> None:
    mode, _ = _mode(idle_quiet_s=1)
    _keyframes(mode, 0, 6)
    assert mode.mode == "keyframes"
    mode.stir(6.05)
    assert mode.at_keyframe(8, 8) == "DEFAULT" and mode.reason == "activity"
    assert mode.at_keyframe(10, 10) == "NONKEY", "then quiet for the quiet period: idle again"
