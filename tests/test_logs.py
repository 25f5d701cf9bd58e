"""Structured log lines and the redaction of secrets."""

from __future__ import annotations

import json
import logging
import time

import pytest

from infra.logs import (
    EXCERPT_CHARS,
    JsonFormatter,
    KeyValueFormatter,
    event,
    excerpt,
    redact,
    redact_value,
    setup_logging,
)

SECRETS = [
    ("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=QUJDREVGRw==", "QUJDREVGRw=="),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5a2V5a2V5==;",
     "a2V5a2V5a2V5=="),
    ("https://acct.blob.core.windows.net/m/x.zip?sv=2019-07-07&sr=b&sig=AbC%2Bdef%3D&se=1",
     "AbC%2Bdef%3D"),
    ("SharedAccessSignature sr=hub%2Fdevices%2Fd&sig=zzz&se=1", "zzz"),
    ("BlobEndpoint=http://x;SharedAccessSignature=sv=2019&sig=qqq", "qqq"),
    # A URL's whole query string (a token need not be called sig) and its credentials.
    ("https://models.example/pkg.zip?token=t0ps3cr3t", "t0ps3cr3t"),
    ("http://user:pa55word@10.0.0.5/model.zip", "pa55word"),
    ("rtsp://admin:hunter2@192.168.1.64:554/Streaming/Channels/101", "hunter2"),
    ("Prediction-Key: 0f1e2d3c4b5a69788796a5b4c3d2e1f0", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ("{'Prediction-key': 'k3y-N0t-Sh0wn', 'Accept': 'application/json'}", "k3y-N0t-Sh0wn"),
    ("custom_vision:\n  prediction_key: k3y-N0t-Sh0wn", "k3y-N0t-Sh0wn"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_redaction_keeps_what_names_the_resource() -> None:
    assert redact("http://user:pw@host:8080/x.zip?sv=1&sig=2") == "http://***@host:8080/x.zip?***"
    assert redact("file:///models/graffiti-1.2.0.zip") == "file:///models/graffiti-1.2.0.zip"


def test_event_lines_carry_ids_and_hide_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("uploader", ids={"device_id": "train-7"})
    log = logging.getLogger("uploader_module.test")
    event(log, logging.INFO, "upload.failed", container="clips", error=SECRETS[1][0])
    line = capsys.readouterr().err.strip()
    assert " INFO uploader upload.failed container=clips " in line
    assert "device_id=train-7" in line and SECRETS[1][1] not in line


def test_any_field_name_is_allowed_and_wins_over_an_id(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    setup_logging("detector", ids={"device_id": "train-7"})
    log = logging.getLogger("detector_module.test")
    event(log, logging.WARNING, "model.loaded", name="graffiti-sample", device_id="other")
    line = capsys.readouterr().err.strip()
    assert "name=graffiti-sample" in line and "device_id=other" in line


def test_json_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "clip.quarantined", None, None)
    record.fields = {"event_id": "ev-1", "reason": "sha256 mismatch"}  # type: ignore[attr-defined]
    doc = json.loads(JsonFormatter().format(record))
    assert doc["event"] == "clip.quarantined" and doc["event_id"] == "ev-1"
    line = KeyValueFormatter().format(record)
    assert 'reason="sha256 mismatch"' in line and "event_id=ev-1" in line


def test_a_field_value_cannot_forge_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("detector")
    log = logging.getLogger("detector_module.test")
    forged = "cam1\n2026-12-01T00:00:00.000Z INFO detector model.activated version=6.6.6"
    event(log, logging.INFO, "api.request", camera=forged, ts="\x1b[31mred\r")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "\\n2026" in lines[0] and "\\u001b[31mred\\r" in lines[0]


@pytest.mark.parametrize("hostile", ["b-" * 50_000, "a://" * 25_000, "x://y/" + "a://" * 25_000])
def test_redaction_time_is_linear_in_the_text(hostile: str) -> None:
    """100 kB of scheme-like text: the old patterns rescanned it from every "x://" (minutes);
    these read it once (well under a second, so 5 s is a bound no loaded machine misses)."""
    started = time.monotonic()
    redact(hostile)
    assert time.monotonic() - started < 5.0


def test_an_excerpt_is_short_redacted_and_says_how_long_the_value_was() -> None:
    long_secret = "http://user:hunter2@" + "h" * 5000
    shown = excerpt(long_secret)
    assert "hunter2" not in shown and shown.endswith("... (5020 characters)")
    assert len(shown) < EXCERPT_CHARS + 30
    assert excerpt({"k": ["v"] * 1000}).startswith('{"k": ["v", ')
    assert excerpt(float("nan")) == "nan" and excerpt(3) == 3 and excerpt(None) is None
    assert excerpt("short") == "short"


def test_redaction_of_a_value_covers_its_keys() -> None:
    assert redact_value({"AccountKey=c2VjcmV0": {"x": "sig=1"}}) == {
        "AccountKey=***": {"x": "sig=1"}}
