"""Fixtures that start real servers on 127.0.0.1 for the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.azurite import Azurite, start_azurite
from tests.support.iothub import HubResponder
from tests.support.mosquitto import Mosquitto, start_mosquitto

# Fuzz suites (tests/fuzz/) and property tests: the default profile (100 examples, no deadline:
# a loaded CI machine is slow, not wrong) is what CI runs; run
# `pytest tests/fuzz --hypothesis-profile=thorough` for a longer search on a workstation.
settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the session; tests keep apart by container (the viewer's is its own)."""
    server = start_azurite(tmp_path_factory.mktemp("azurite-shared"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def hub(mosquitto: Mosquitto) -> Iterator[HubResponder]:
    """A fresh module twin on the broker; each test gets its own module id."""
    responder = HubResponder(mosquitto.plain_port, "train-0001",
                             f"camera_module_{uuid.uuid4().hex[:6]}")
    responder.start()
    yield responder
    responder.stop()


@pytest.fixture
def hub_env(hub: HubResponder, mosquitto: Mosquitto) -> dict[str, str]:
    """Environment that points a module at the test hub through the real SDK."""
    return {
        "GRAFFITI_IOTHUB_CONNECTION_STRING": hub.connection_string(),
        "GRAFFITI_IOTHUB_CA_FILE": str(mosquitto.ca_file),
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
