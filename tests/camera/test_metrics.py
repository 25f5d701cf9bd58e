"""The camera's /metrics: every series labelled with its camera, served without getting in the
camera's way (a taken port, a hostile or silent client, a failing render).

The real module's endpoint, scraped after an event, is checked in
``test_rtsp.py::test_event_is_recorded_with_pre_and_post_roll_and_a_valid_sidecar``."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from camera_module.exposition import MetricsService, render
from config.camera import CameraSettings
from infra.prometheus import MetricsEndpoint
from tests.support.prometheus import parse, scrape

IDS = {"train": "train-7", "camera": "cam-2"}

STATUS: dict[str, Any] = {
    "stream": {"camera": {"status": "online", "packets": 250, "frames": 240, "reconnects": 1,
                          "stalls": 2},
               "record": {"status": "offline", "packets": 0, "frames": 0, "reconnects": 3,
                          "stalls": 0}},
    "sampling": {"samples": 48, "skipped": 1, "latencyP50Ms": 30.0, "latencyP95Ms": 80.0,
                 "decodeMode": "keyframes", "decodeModeChanges": 3, "gopS": 2.0},
    "detector": {"status": "up", "failures": 4},
    "recording": {"events": 2, "activeEvent": "20261203T101500Z-cam-2-abc123",
                  "clipsWritten": 3, "writeFailures": 0, "clipsDropped": 0,
                  "recoveredClips": 1, "pendingClips": 1, "ring": {"bytes": 5_000_000}},
}


def key(name: str, **extra: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset({**IDS, **extra}.items())


def test_every_figure_of_the_status_is_a_series_with_the_camera_label() -> None:
    series = parse(render(STATUS, train="train-7", camera="cam-2"))
    assert all(dict(labels)["camera"] == "cam-2" and dict(labels)["train"] == "train-7"
               for _, labels in series)
    assert series[key("camera_stream_up", stream="camera")] == 1
    assert series[key("camera_stream_up", stream="record")] == 0
    assert series[key("camera_stream_reconnects_total", stream="record")] == 3
    assert series[key("camera_stream_stalls_total", stream="camera")] == 2
    assert series[key("camera_decision_latency_seconds", quantile="0.95")] == pytest.approx(0.08)
    assert series[key("camera_decode_keyframes_only")] == 1
    assert series[key("camera_decode_mode_changes_total")] == 3
    assert series[key("camera_gop_seconds")] == 2.0
    assert series[key("camera_detector_failures_total")] == 4
    assert series[key("camera_event_active")] == 1
    assert series[key("camera_clips_written_total")] == 3
    assert series[key("camera_clips_recovered_total")] == 1
    assert series[key("camera_ring_bytes")] == 5_000_000


def test_figures_not_known_yet_are_left_out_not_invented() -> None:
    status = {**STATUS, "sampling": {"samples": 0, "latencyP50Ms": None,
                                     "latencyP95Ms": None, "gopS": None}}
    series = parse(render(status, train="train-7", camera="cam-2"))
    names = {name for name, _ in series}
    assert "camera_gop_seconds" not in names
    assert "camera_decision_latency_seconds" not in names
    assert series[key("camera_samples_total")] == 0


def test_a_quote_in_an_id_cannot_break_the_format() -> None:
    series = parse(render(STATUS, train='a"b\\c', camera="cam-2"))
    assert ("camera_samples_total",
            frozenset({"train": 'a\\"b\\\\c', "camera": "cam-2"}.items())) in series


@pytest.fixture
def endpoint() -> Iterator[MetricsEndpoint]:
    calls = iter(["ok 1\n", RuntimeError("status half built")])

    def flaky() -> str:
        answer = next(calls, "ok 2\n")
        if isinstance(answer, Exception):
            raise answer
        return answer

    server = MetricsEndpoint("127.0.0.1", 0, flaky)
    server.start()
    yield server
    server.stop()


def test_only_get_metrics_is_served(endpoint: MetricsEndpoint) -> None:
    base = f"http://127.0.0.1:{endpoint.port}"
    assert scrape(f"{base}/metrics") == {("ok", frozenset()): 1.0}
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(f"{base}/metrics", timeout=5)
    assert failed.value.code == 503  # the render raised: named in the log, not a dead thread
    assert scrape(f"{base}/metrics?x=1") == {("ok", frozenset()): 2.0}
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(f"{base}/", timeout=5)
    assert failed.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(urllib.request.Request(f"{base}/metrics", data=b"x" * 10_000,
                                                      method="POST"), timeout=5)
    assert (failed.value.code, failed.value.headers["Allow"]) == (405, "GET")


def test_a_silent_client_does_not_hold_up_the_scrape(endpoint: MetricsEndpoint) -> None:
    with socket.create_connection(("127.0.0.1", endpoint.port)) as silent:
        silent.sendall(b"GET /metr")
        assert scrape(f"http://127.0.0.1:{endpoint.port}/metrics")


def test_a_taken_port_is_reported_and_the_camera_goes_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = CameraSettings.model_validate({"metrics": {"host": "127.0.0.1",
                                                              "port": port}})
        runtime: Any = SimpleNamespace(settings=settings)
        service = MetricsService(runtime, lambda: STATUS)
        service.start()
        state = service.status()["metrics"]
        service.stop()
    assert state["status"] == "error"
    assert f"cannot listen on 127.0.0.1:{port}" in state["lastError"]
