"""The interface every link implements, and what it calls back into."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config.errors import FieldError

# IoT Hub's limit for one device-to-cloud message; frames and clips never travel this way.
MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Identity:
    """Who this module is, for logs and message topics."""

    device_id: str
    module_id: str


@dataclass
class LinkHandlers:
    """Callbacks a link makes into the module runtime. They must not block for long."""

    on_twin: Callable[[dict[str, Any]], None]
    on_patch: Callable[[dict[str, Any]], None]
    on_method: Callable[[str, Any], tuple[int, Any]]
    on_source_error: Callable[[list[FieldError]], None] = field(default=lambda errors: None)


class MessageTooLarge(ValueError):
    """An output body over IoT Hub's 256 KB limit; it is a bug to send frames this way."""


def encode_body(output: str, body: dict[str, Any]) -> bytes:
    """Serialise an output body as UTF-8 JSON, refusing anything over the message limit."""
    data = json.dumps(body, separators=(",", ":"), default=str).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message to output {output!r} is {len(data)} bytes, over the "
                              f"{MAX_MESSAGE_BYTES} byte limit")
    return data


class EdgeLink(ABC):
    """One module's connection to its twin, outputs and direct methods (no module has inputs)."""

    identity: Identity
    kind: str

    @abstractmethod
    def start(self, handlers: LinkHandlers) -> None:
        """Begin delivering twin, patches and methods. Never fails for being offline."""

    @abstractmethod
    def report(self, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into the reported properties (queued; never blocks the caller)."""

    @abstractmethod
    def send(self, output: str, msg_type: str, body: dict[str, Any]) -> None:
        """Send a JSON message to a named output with an application property ``type``."""

    @abstractmethod
    def stop(self) -> None:
        """Flush what can be flushed quickly and release the connection."""
