"""Choose the link from the environment: IoT Edge, a module connection string, or local."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from azure.iot.device import IoTHubModuleClient

from edge_link.base import EdgeLink, Identity
from edge_link.iothub import CLIENT_OPTIONS, IoTHubLink
from edge_link.local import LocalLink
from edge_link.outbound import FOLDER as OUTBOUND_FOLDER

CONNECTION_STRING_VAR = "GRAFFITI_IOTHUB_CONNECTION_STRING"
CA_FILE_VAR = "GRAFFITI_IOTHUB_CA_FILE"


def _parse_connection_string(value: str) -> dict[str, str]:
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    missing = [k for k in ("HostName", "DeviceId", "ModuleId") if k not in parts]
    if missing:
        raise ValueError(f"{CONNECTION_STRING_VAR} lacks {', '.join(missing)}; a module "
                         "connection string is needed")
    return parts


def open_link(module_id: str, *, data_dir: Path, twin_file: Path | None,
              environ: Mapping[str, str] | None = None) -> EdgeLink:
    """The link for this process.

    * ``IOTEDGE_MODULEID`` set: running under IoT Edge; credentials come from the workload API.
    * ``GRAFFITI_IOTHUB_CONNECTION_STRING`` set: a module identity's connection string (a hub
      without the Edge runtime, or a test broker; ``GRAFFITI_IOTHUB_CA_FILE`` trusts its CA).
    * otherwise: local mode with the YAML twin stand-in.

    An IoT Hub link keeps its outbound messages in ``<data_dir>/outbound/`` until the hub has
    them, so a restarted module sends what the old process had not.

    The device and module ids are checked against IoT Hub's own rule here
    (:class:`edge_link.base.BadIdentity` otherwise), once, before any log line carries them.
    """
    env = os.environ if environ is None else environ
    if env.get("IOTEDGE_MODULEID"):
        identity = Identity(env.get("IOTEDGE_DEVICEID", "unknown"), env["IOTEDGE_MODULEID"])
        return IoTHubLink(
            lambda: IoTHubModuleClient.create_from_edge_environment(**CLIENT_OPTIONS), identity,
            queue_dir=data_dir / OUTBOUND_FOLDER)
    connection_string = env.get(CONNECTION_STRING_VAR)
    if connection_string:
        parts = _parse_connection_string(connection_string)
        ca_file = env.get(CA_FILE_VAR)
        ca = Path(ca_file).read_text() if ca_file else None
        identity = Identity(parts["DeviceId"], parts["ModuleId"])
        return IoTHubLink(
            lambda: IoTHubModuleClient.create_from_connection_string(
                connection_string, server_verification_cert=ca, **CLIENT_OPTIONS
            ),
            identity,
            queue_dir=data_dir / OUTBOUND_FOLDER,
        )
    device_id = env.get("GRAFFITI_DEVICE_ID") or socket.gethostname()
    return LocalLink(module_id, twin_file, data_dir, device_id=device_id)
