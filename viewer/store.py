"""The blob container behind the viewer, with storage errors turned into answers.

One small async interface (:class:`Store`) over ``azure.storage.blob.aio`` so the catalog and
reviews can be tested against an in-memory fake. Every SDK exception is sorted by
:func:`infra.blob_client.classify` (as the uploader's are) and answered as what it means here:
the endpoint is away (:class:`Unavailable`, a 503 naming the endpoint), credentials refused
(:class:`Denied`), no such blob (:class:`Missing`), an ETag condition failed
(:class:`Conflict`). Messages name account, container and endpoint, never the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from azure.core import MatchConditions
from azure.storage.blob import BlobProperties, ContentSettings

from contracts.blob_layout import decode_metadata
from infra.blob_client import (
    STORAGE_ERRORS,
    ConnectionStringError,
    StorageFailure,
    async_service_client,
    classify,
    describe,
)
from infra.logs import redact
from viewer.settings import ViewerSettings

T = TypeVar("T")


class StoreError(Exception):
    """A storage failure, safe to show: ``str()`` never holds a secret."""

    status = 502
    kind = "storage_error"

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class Unavailable(StoreError):
    status, kind = 503, "storage_unavailable"


class Denied(StoreError):
    status, kind = 502, "storage_denied"


class Missing(StoreError):
    status, kind = 404, "not_found"


class Conflict(StoreError):
    status, kind = 409, "conflict"


class TooLarge(StoreError):
    """A small blob (sidecar, review) that is not small: it is not read whole."""

    status, kind = 502, "blob_too_large"


@dataclass(frozen=True)
class Entry:
    """One listed blob: its name, decoded metadata, ETag and size."""

    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    size: int = 0


class Store(Protocol):
    """What the viewer needs from a container."""

    describe: str

    async def folders(self, prefix: str) -> list[str]:
        """Names of the 'folders' (prefixes ending in '/') directly under ``prefix``."""
        ...

    async def entries(self, prefix: str) -> list[Entry]:
        """Every blob whose name starts with ``prefix``, with metadata."""
        ...

    async def read(self, name: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        """A whole (small) blob and its ETag; :class:`TooLarge` past ``max_bytes``."""
        ...

    async def size(self, name: str) -> int:
        ...

    def stream(self, name: str, offset: int, length: int) -> AsyncIterator[bytes]:
        """Bytes ``offset`` .. ``offset + length - 1`` of a blob, in chunks."""
        ...

    async def write(self, name: str, data: bytes, *, content_type: str,
                    metadata: dict[str, str], etag: str | None) -> str:
        """Write a blob only if its ETag is still ``etag`` (None: only if it does not exist);
        returns the new ETag, :class:`Conflict` otherwise."""
        ...

    async def close(self) -> None:
        ...


class AzureStore:
    """A container on Blob Storage on IoT Edge, an Azure Storage account or Azurite."""

    def __init__(self, settings: ViewerSettings) -> None:
        try:
            self._client = async_service_client(settings.connection_string,
                                                api_version=settings.api_version,
                                                timeout_s=settings.timeout_s)
        except ConnectionStringError as exc:
            raise StoreError(str(exc)) from None
        self.container = settings.container
        self.describe = describe(self._client, self.container)
        self._container = self._client.get_container_client(self.container)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except STORAGE_ERRORS as exc:
            raise self._error(what, classify(exc)) from None
        except OSError as exc:  # the asyncio transport's own connection errors
            raise Unavailable(f"{self.describe} is not reachable ({type(exc).__name__})") \
                from None

    def _error(self, what: str, failure: StorageFailure) -> StoreError:
        status, code = failure.status, failure.code or ""
        if failure.kind == "conflict":
            return Conflict(f"{what}: already written by someone else" if status == 409
                            else f"{what}: changed by someone else")
        if failure.kind == "not_found":
            return Missing(f"{what}: not found ({code or 'BlobNotFound'})")
        if failure.kind == "auth":
            return Denied(f"the credentials for {self.describe} cannot sign a request"
                          if status is None else
                          f"{self.describe} refused the credentials ({status} {code})".strip())
        if failure.kind == "unreachable":
            return Unavailable(f"{self.describe} is not reachable ({failure.error})"
                               if status is None else
                               f"{self.describe} answered {status}; try again")
        return StoreError(f"{what}: storage answered {status} {code}")

    async def folders(self, prefix: str) -> list[str]:
        async def run() -> list[str]:
            return [item.name async for item in
                    self._container.walk_blobs(name_starts_with=prefix or None, delimiter="/")
                    if not isinstance(item, BlobProperties)]
        try:
            return await self._call(f"listing {prefix!r}", run)
        except Missing:  # no container yet: the uploader creates it with the first clip
            return []

    async def entries(self, prefix: str) -> list[Entry]:
        async def run() -> list[Entry]:
            return [Entry(b.name, decode_metadata(b.metadata or {}), str(b.etag or ""),
                          int(b.size or 0))
                    async for b in self._container.list_blobs(name_starts_with=prefix or None,
                                                              include=["metadata"])]
        try:
            return await self._call(f"listing {prefix!r}", run)
        except Missing:
            return []

    async def read(self, name: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        async def run() -> tuple[bytes, str]:
            # One byte more than allowed is asked for, so a blob too large is seen as such
            # without downloading it whole.
            downloader = await self._container.download_blob(
                name, offset=0 if max_bytes is not None else None,
                length=max_bytes + 1 if max_bytes is not None else None)
            data = await downloader.readall()
            return bytes(data), str(downloader.properties.etag or "")
        data, etag = await self._call(name, run)
        if max_bytes is not None and len(data) > max_bytes:
            raise TooLarge(f"{name} is larger than {max_bytes} bytes")
        return data, etag

    async def size(self, name: str) -> int:
        async def run() -> int:
            props = await self._container.get_blob_client(name).get_blob_properties()
            return int(props.size)
        return await self._call(name, run)

    async def stream(self, name: str, offset: int, length: int) -> AsyncIterator[bytes]:
        downloader = await self._call(
            name, lambda: self._container.download_blob(name, offset=offset, length=length))
        chunks = downloader.chunks()
        while True:
            try:
                chunk = await self._call(name, chunks.__anext__)
            except StopAsyncIteration:
                return
            yield chunk

    async def write(self, name: str, data: bytes, *, content_type: str,
                    metadata: dict[str, str], etag: str | None) -> str:
        async def run() -> str:
            blob = self._container.get_blob_client(name)
            settings = ContentSettings(content_type=content_type)
            if etag is None:
                result = await blob.upload_blob(data, overwrite=False, metadata=metadata,
                                                content_settings=settings)
            else:
                result = await blob.upload_blob(data, overwrite=True, metadata=metadata,
                                                content_settings=settings, etag=etag,
                                                match_condition=MatchConditions.IfNotModified)
            return str(result.get("etag") or "")
        return await self._call(name, run)

    async def close(self) -> None:
        await self._client.close()
