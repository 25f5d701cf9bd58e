"""The interface every link implements, and what it calls back into."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.errors import FieldError
from infra.logs import excerpt

# IoT Hub's limit for one device-to-cloud message; frames and clips never travel this way.
MAX_MESSAGE_BYTES = 256 * 1024
# IoT Hub's rule for device and module ids (and message ids): up to 128 ASCII letters, digits
# and - : . + % _ # * ? ! ( ) , = @ ; $ '. It allows more than contracts.identifiers does, so
# a device id is never put in a path or a blob name, only in messages, metadata and logs.
HUB_ID = re.compile(r"[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}")


class BadIdentity(ValueError):
    """A device or module id that IoT Hub itself would not accept."""


def check_hub_id(value: str, what: str) -> str:
    """``value`` if IoT Hub accepts it as a device or module id, else :class:`BadIdentity`."""
    if HUB_ID.fullmatch(value):
        return value
    raise BadIdentity(f"{what} {excerpt(value, 40)!r} is not a valid IoT Hub id: 1 to 128 ASCII "
                      "letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '")


@dataclass(frozen=True)
class Identity:
    """Who this module is, for logs and message topics; both ids follow IoT Hub's rule."""

    device_id: str
    module_id: str

    def __post_init__(self) -> None:
        check_hub_id(self.device_id, "device id")
        check_hub_id(self.module_id, "module id")


@dataclass
class LinkHandlers:
    """Callbacks a link makes into the module runtime. They must not block for long."""

    on_twin: Callable[[dict[str, Any]], None]
    # Returns whether the patch was applied: the local link diffs its next edit against the
    # last document applied, so an edit that was refused is never half remembered.
    on_patch: Callable[[dict[str, Any]], bool]
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
    def send(self, output: str, msg_type: str, body: dict[str, Any],
             message_id: str | None = None) -> None:
        """Send a JSON message to a named output with an application property ``type`` and,
        for a fact about one event or clip, a stable ``message_id`` a consumer de-duplicates
        by."""

    def status(self) -> Mapping[str, Any]:
        """Reported-property sections about the link itself (none unless it has counters)."""
        return {}

    @abstractmethod
    def stop(self) -> None:
        """Flush what can be flushed quickly and release the connection."""
