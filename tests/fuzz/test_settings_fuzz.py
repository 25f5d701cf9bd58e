"""Hostile and odd settings through the real path: random JSON trees as desired-property
patches and full twin reads, random YAML documents and hostile files as the local twin file.

Each goes into a running camera-module runtime (settings store and local link) exactly where a
link hands it over. For every input: no exception escapes, the settings in force are the last
good ones unless the input was applied, a refusal is reported and the reported properties stay
far below IoT Hub's 32 KB, nothing takes long or grows memory, and no log line or report holds
a control character it did not escape or a secret.

``pytest tests/fuzz --hypothesis-profile=thorough`` searches longer.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from config.layers import MAX_DEPTH
from config.registry import module_spec
from edge_link.local import LocalLink
from edge_link.runtime import ModuleRuntime, RuntimeOptions
from infra.logs import KeyValueFormatter
from tests.support.documents import nested

SECRET = "S3CR3TVALUE"
# Time one input may take (each takes milliseconds; this only catches a hang or a blow-up).
EXAMPLE_BOUND_S = 10.0
# Peak memory the whole suite may add (an expanded YAML bomb takes gigabytes).
RSS_BOUND_MB = 300
REPORT_BOUND_BYTES = 16 * 1024

KNOWN_KEYS = ["trigger", "sampling", "stream", "recording", "identity", "logging", "min_score",
              "cooldown_s", "labels", "label_min_score", "include_zones", "detect_fps",
              "reconnect", "max_s", "camera_id", "train_id", "level", "confirm_hits",
              "detector_url", "$version", "$metadata"]
ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
KEYS = st.sampled_from(KNOWN_KEYS) | ODD_TEXT | st.sampled_from(
    ["a.b", "$x", "sp ace", "\r\nforged=1", f"AccountKey={SECRET}"])
LEAVES = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
          | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -0.0])
          | ODD_TEXT | st.sampled_from([
              f"https://acct.blob.core.windows.net/m/x.zip?sv=1&sig={SECRET}",
              f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET};",
              f"rtsp://admin:{SECRET}@10.0.0.1/stream", "x" * 5000, "\x1b[31m\n\r\x00"]))
JSON_TREES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30)
PATCHES = st.dictionaries(KEYS, JSON_TREES, max_size=6)


class Lines(logging.Handler):
    """Every log line the product would write, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(KeyValueFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Harness:
    """A running camera-module runtime on a local twin file, with its log lines captured."""

    def __init__(self, root: Path) -> None:
        self.twin = root / "camera.yaml"
        self.twin.write_text("trigger:\n  min_score: 0.6\n")
        self.data_dir = root / "data"
        # A debounce that never ends: only the test reloads the file, at the moment it chooses.
        link = LocalLink("camera_module", self.twin, self.data_dir, device_id="train-0001",
                         debounce_s=3600)
        self.runtime: ModuleRuntime[Any] = ModuleRuntime(
            module_spec("camera"), RuntimeOptions(self.twin, self.data_dir, twin_wait_s=5),
            environ={}, link=link)
        self.link = link
        self.log = Lines()

    def next_version(self) -> int:
        """The next $version, from the link's own count, as the link would number it."""
        self.link._version += 1
        return self.link._version

    def reported(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "reported.json").read_text())

    def check_outputs(self) -> None:
        """No secret and no raw control character in a log line or the reported file."""
        text = (self.data_dir / "reported.json").read_text()
        assert SECRET not in text
        assert len(text.encode()) < 32 * 1024
        for line in self.log.lines:
            first = line.split("\n", 1)[0]
            assert first.isprintable(), repr(first)
            assert SECRET not in line, line
        self.log.lines.clear()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz-settings"))
    logging.getLogger().addHandler(h.log)
    h.runtime.start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield h
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    h.runtime.stop()
    logging.getLogger().removeHandler(h.log)
    assert grown_mb < RSS_BOUND_MB, f"peak memory grew by {grown_mb:.0f} MB"


def _settled(h: Harness, feed: Callable[[], object]) -> tuple[Any, Any]:
    """Run ``feed`` within the time bound; the settings in force before and after."""
    before = h.runtime.settings
    started = time.monotonic()
    feed()
    assert time.monotonic() - started < EXAMPLE_BOUND_S
    return before, h.runtime.settings


def _check_refusal_reported(h: Harness) -> None:
    settings = h.reported()["settings"]
    assert settings["status"] == "rejected"
    assert len(json.dumps(settings["rejected"]).encode()) < REPORT_BOUND_BYTES
    assert len(settings["rejected"]["errors"]) <= 10


@given(PATCHES)
@example({"trigger": {"cooldown_s": True, "min_score": float("nan")}})
@example({"$version": "7", "trigger": {"label_min_score": {"a.b": 0.5}}})
def test_random_patches_through_the_runtime(harness: Harness, patch: dict[str, Any]) -> None:
    _patch_through_the_runtime(harness, patch)


# Outside hypothesis, which cannot print a document nested this deep.
@pytest.mark.parametrize("patch", [
    {"trigger": nested(key="trigger", depth=50_000)},
    {"trigger": {f"k{i}": "v" * 3000 for i in range(2000)}},
    {"trigger": {"labels": ["x" * 100] * 5000}},
], ids=["nested 50000 deep", "2000 long keys", "5000 labels"])
def test_huge_patches_through_the_runtime(harness: Harness, patch: dict[str, Any]) -> None:
    _patch_through_the_runtime(harness, patch)


def _patch_through_the_runtime(harness: Harness, patch: dict[str, Any]) -> None:
    h = harness
    version = h.next_version()
    handlers = h.link._handlers
    assert handlers is not None
    outcome: list[bool] = []
    before, after = _settled(h, lambda: outcome.append(
        handlers.on_patch({**patch, "$version": version})))
    if not outcome[0]:
        assert after is before, "a refused patch leaves nothing of itself in force"
        _check_refusal_reported(h)
    h.check_outputs()


@given(PATCHES)
@example({"trigger": {"min_score": 3, "cooldown_s": 12}})
@example(nested(key="trigger", depth=MAX_DEPTH + 1))
def test_random_full_reads_through_the_runtime(harness: Harness, desired: dict[str, Any]
                                               ) -> None:
    """A full desired document applies field by field: whatever it holds, the settings in
    force are a validated whole, and every field it could not take is named."""
    h = harness
    version = h.next_version()
    handlers = h.link._handlers
    assert handlers is not None
    before, after = _settled(h, lambda: handlers.on_twin({**desired, "$version": version}))
    settings = h.reported()["settings"]
    if settings["status"] == "rejected":
        _check_refusal_reported(h)
    else:
        assert settings["version"] == version
    assert type(after) is type(before)
    h.check_outputs()


YAML_TEXT = st.text(st.sampled_from(list("ab01:-[]{}&*!|>'\"#%@`?,.~ \n\t")), max_size=120)
YAML_DUMPS = PATCHES.map(lambda d: yaml.safe_dump(d, allow_unicode=True))
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


@given(YAML_TEXT | YAML_DUMPS)
@example(BILLION_LAUGHS)
@example("[" * 10_000 + "]" * 10_000)
@example("a: !!python/object/apply:os.system [echo hi]\n")
@example("trigger: !!binary aGk=\n")
@example("trigger:\n  min_score: 0.7\n  cooldown_s: 2026-12-01\n")
@example("---\ntrigger: {}\n---\nsampling: {}\n")
def test_random_yaml_as_the_twin_file(harness: Harness, text: str) -> None:
    h = harness
    h.twin.write_text(text, encoding="utf-8")
    _settled(h, h.link._reload)
    assert not any("local_twin.reload_failed" in line for line in h.log.lines)
    settings = h.reported()["settings"]
    if settings["status"] == "rejected":
        _check_refusal_reported(h)
    h.check_outputs()


def _replace(path: Path, make: Callable[[Path], object]) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    make(path)


HOSTILE_FILES: list[tuple[str, Callable[[Path], object], str]] = [
    ("link to a system file", lambda p: p.symlink_to("/etc/passwd"), "symbolic link"),
    ("link to /dev/zero", lambda p: p.symlink_to("/dev/zero"), "symbolic link"),
    ("folder", lambda p: p.mkdir(), "a folder"),
    ("FIFO", lambda p: os.mkfifo(p), "not a regular file"),
    ("binary", lambda p: p.write_bytes(os.urandom(4096) + b"\x00"), "not a text file"),
    ("latin-1", lambda p: p.write_bytes(b"trigger:\n  labels: [caf\xe9]\n"), "not UTF-8"),
    ("10 MB", lambda p: p.write_bytes(b"a: 1\n" * 2_000_000), "bytes"),
    ("billion laughs", lambda p: p.write_text(BILLION_LAUGHS), "aliases"),
    ("a list", lambda p: p.write_text("- trigger\n- sampling\n"), "must be a mapping"),
    ("gone", lambda p: None, "file not found"),
]


@pytest.mark.parametrize(("make", "reason"), [(m, r) for _, m, r in HOSTILE_FILES],
                         ids=[name for name, _, _ in HOSTILE_FILES])
def test_a_hostile_twin_file_is_refused_with_its_reason(harness: Harness,
                                                        make: Callable[[Path], object],
                                                        reason: str) -> None:
    h = harness
    h.twin.unlink(missing_ok=True) if not h.twin.is_dir() else h.twin.rmdir()
    h.twin.write_text("trigger:\n  min_score: 0.61\n")
    h.link._reload()
    assert h.runtime.settings.trigger.min_score == 0.61
    _replace(h.twin, make)
    reload = threading.Thread(target=h.link._reload, daemon=True)
    before = h.runtime.settings
    reload.start()
    reload.join(EXAMPLE_BOUND_S)
    assert not reload.is_alive(), "the reload hung on the file"
    assert h.runtime.settings is before, "never taken as an empty twin"
    _check_refusal_reported(h)
    assert reason in h.reported()["settings"]["rejected"]["errors"][0]["reason"]
    h.check_outputs()
    _replace(h.twin, lambda p: p.write_text("trigger:\n  min_score: 0.6\n"))
