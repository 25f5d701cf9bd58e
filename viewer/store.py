"""The blob container behind the viewer, with storage errors turned into answers.

One small async interface (:class:`Store`) over ``azure.storage.blob.aio`` so the catalog and
reviews can be tested against an in-memory fake, and so every SDK exception is classified in
one place: the endpoint is away (:class:`Unavailable`, a 503 naming the endpoint), credentials
refused (:class:`Denied`), no such blob (:class:`Missing`), an ETag condition failed
(:class:`Conflict`). Messages name account, container and endpoint, never the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobProperties, ContentSettings
from azure.storage.blob.aio import BlobServiceClient

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

    async def read(self, name: str) -> tuple[bytes, str]:
        """A whole (small) blob and its ETag."""
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
        secret = settings.connection_string
        if secret is None or not secret.get_secret_value():
            raise StoreError("no storage connection string")
        try:
            self._client = BlobServiceClient.from_connection_string(
                secret.get_secret_value(), api_version=settings.api_version, retry_total=0,
                connection_timeout=settings.timeout_s, read_timeout=settings.timeout_s)
        except ValueError:
            # The SDK's message may quote the string; ours never does.
            raise StoreError("the storage connection string is not valid") from None
        self.container = settings.container
        self.endpoint = f"{self._client.scheme}://{self._client.primary_hostname}"
        account = self._client.account_name or "?"
        self.describe = (f"blob endpoint {self.endpoint} (account {account!r}, container "
                         f"{self.container!r})")
        self._container = self._client.get_container_client(self.container)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except ResourceModifiedError:
            raise Conflict(f"{what}: changed by someone else") from None
        except ResourceExistsError:
            raise Conflict(f"{what}: already written by someone else") from None
        except ResourceNotFoundError as exc:
            raise Missing(f"{what}: not found ({exc.error_code or 'BlobNotFound'})") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise Unavailable(f"{self.describe} is not reachable ({type(exc).__name__})") \
                from None
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 412:
                raise Conflict(f"{what}: changed by someone else") from None
            if status in (401, 403):
                raise Denied(f"{self.describe} refused the credentials ({status} "
                             f"{exc.error_code or ''})".strip()) from None
            if status >= 500 or status in (408, 429):
                raise Unavailable(f"{self.describe} answered {status}; try again") from None
            raise StoreError(f"{what}: storage answered {status} {exc.error_code or ''}") \
                from None
        except OSError as exc:
            raise Unavailable(f"{self.describe} is not reachable ({type(exc).__name__})") \
                from None

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
            return [Entry(b.name, {k: unquote(v) for k, v in (b.metadata or {}).items()},
                          str(b.etag or ""), int(b.size or 0))
                    async for b in self._container.list_blobs(name_starts_with=prefix or None,
                                                              include=["metadata"])]
        try:
            return await self._call(f"listing {prefix!r}", run)
        except Missing:
            return []

    async def read(self, name: str) -> tuple[bytes, str]:
        async def run() -> tuple[bytes, str]:
            downloader = await self._container.download_blob(name)
            data = await downloader.readall()
            return bytes(data), str(downloader.properties.etag or "")
        return await self._call(name, run)

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
