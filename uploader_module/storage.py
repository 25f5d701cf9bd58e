"""The blob endpoint: one client per connection string, errors sorted by what to do next.

Every SDK call goes through :meth:`BlobTarget._call`, which turns the SDK's exceptions
(sorted by :func:`infra.blob_client.classify`) into a :class:`StorageError` of one of three
kinds: ``unreachable`` (wait with backoff, the whole endpoint), ``auth`` (credentials refused:
wait long, say which account and container) and ``rejected`` (this request was refused: retry
this clip later). Messages never carry the connection string or a SAS; the SDK's own retries
are off because ours resume instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from config.uploader import UploadSettings
from infra.blob_client import (
    STORAGE_ERRORS,
    ConnectionStringError,
    StorageFailure,
    classify,
    describe,
    service_client,
)
from infra.logs import redact
from infra.throttle import Throttle
from uploader_module.blocks import FilePlan, PlanBuilder, plan_file, read_blocks
from uploader_module.outbox import MB

T = TypeVar("T")
ErrorKind = Literal["unreachable", "auth", "rejected", "config"]


class StorageError(Exception):
    """A failed storage call, classified; ``str()`` is safe to log and report."""

    def __init__(self, kind: ErrorKind, message: str, code: str | None = None) -> None:
        super().__init__(redact(message))
        self.kind = kind
        self.code = code


class Interrupted(Exception):
    """The module is stopping; what was staged stays staged for the next start."""


@dataclass(frozen=True)
class PutResult:
    """What it took to get one file into its blob."""

    name: str
    bytes: int
    bytes_sent: int
    blocks_sent: int
    blocks_reused: int
    already_there: bool


class BlobTarget:
    """A container on one storage endpoint, as the upload settings describe it."""

    def __init__(self, upload: UploadSettings) -> None:
        self.block_bytes = max(1, int(upload.block_size_mb * MB))
        self.validate_blocks = upload.validate_blocks
        try:
            self.client = service_client(
                upload.connection_string, api_version=upload.api_version,
                timeout_s=upload.timeout_s, max_single_put_size=self.block_bytes,
                max_block_size=self.block_bytes)
        except ConnectionStringError as exc:
            raise StorageError("config", "no storage connection string: set "
                               "UPLOADER_UPLOAD__CONNECTION_STRING or upload.connection_string"
                               if exc.missing else "upload.connection_string is not a valid "
                               "storage connection string" +
                               (f": {exc.problem}" if exc.problem else "")) from None
        self.container = upload.container
        self.endpoint = describe(self.client, upload.container)
        self._container = self.client.get_container_client(upload.container)
        self._ready = False
        self._lock = threading.Lock()

    def ensure_container(self) -> None:
        """Create the container unless this client has seen it (once per target)."""
        with self._lock:
            if self._ready:
                return
            try:
                self._call(self._container.create_container)
            except StorageError as exc:
                if exc.code != "ContainerAlreadyExists":
                    raise
            self._ready = True

    def blob(self, name: str) -> BlobClient:
        return self._container.get_blob_client(name)

    def confirmed(self, name: str, plan: FilePlan) -> bool:
        """Whether the blob exists with the local file's size and MD5."""
        try:
            props = self._call(self.blob(name).get_blob_properties)
        except StorageError as exc:
            if exc.code == "BlobNotFound":
                return False
            raise
        md5 = props.content_settings.content_md5
        return props.size == plan.size and md5 is not None and bytes(md5) == plan.md5

    def size_of(self, name: str) -> int:
        return int(self._call(self.blob(name).get_blob_properties).size)

    def put(self, name: str, path: Path, *, content_type: str, metadata: dict[str, str],
            throttle: Throttle, stop: threading.Event,
            verify: Callable[[FilePlan], None] | None = None) -> PutResult:
        """Upload one file and confirm the blob holds it; :class:`StorageError` otherwise.
        ``verify`` sees the file's digests before anything is committed and may refuse it.

        A file of at most one block goes as a single Put Blob: the service checks its MD5 and
        answers with it, which is the confirmation. A larger file goes as blocks, hashed while
        the previous block is on the wire: blocks already staged by an interrupted run are not
        sent again, a blob already committed with exactly these blocks is left alone, and after
        the commit the blob's size and MD5 are checked.
        """
        blob = self.blob(name)
        if path.stat().st_size <= self.block_bytes:
            return self._put_single(blob, name, path, content_type, metadata, throttle, stop,
                                    verify)
        committed, staged = self._block_lists(blob)
        if committed:
            plan = plan_file(path, self.block_bytes)
            if committed == [(b.id, b.length) for b in plan.blocks]:
                if verify is not None:
                    verify(plan)
                self._check(name, plan)
                return PutResult(name, plan.size, 0, 0, 0, True)
        builder = PlanBuilder(path)
        sent = reused = sent_blocks = 0
        # One block on the wire while the next is read and hashed.
        with ThreadPoolExecutor(1, thread_name_prefix="stage") as wire:
            in_flight: Future[None] | None = None
            for data in read_blocks(path, self.block_bytes):
                block = builder.add(data)
                if staged.get(block.id) == block.length:
                    reused += 1
                    continue
                if in_flight is not None:
                    in_flight.result()
                if stop.is_set() or not throttle.wait(block.length, stop):
                    raise Interrupted
                in_flight = wire.submit(self._call, lambda b=block, d=data: blob.stage_block(
                    b.id, d, length=len(d), validate_content=self.validate_blocks))
                sent += len(data)
                sent_blocks += 1
            if in_flight is not None:
                in_flight.result()
        plan = builder.finish()
        if verify is not None:
            verify(plan)
        settings = ContentSettings(content_type=content_type, content_md5=plan.md5)
        self._call(lambda: blob.commit_block_list([BlobBlock(b.id) for b in plan.blocks],
                                                  content_settings=settings, metadata=metadata))
        self._check(name, plan)
        return PutResult(name, plan.size, sent, sent_blocks, reused, False)

    def _put_single(self, blob: BlobClient, name: str, path: Path, content_type: str,
                    metadata: dict[str, str], throttle: Throttle, stop: threading.Event,
                    verify: Callable[[FilePlan], None] | None) -> PutResult:
        data = path.read_bytes()
        builder = PlanBuilder(path)
        if data:
            builder.add(data)
        plan = builder.finish()
        if verify is not None:
            verify(plan)
        if not throttle.wait(len(data), stop):
            raise Interrupted
        settings = ContentSettings(content_type=content_type, content_md5=plan.md5)
        answer = self._call(lambda: blob.upload_blob(
            data, length=len(data), overwrite=True, validate_content=True, metadata=metadata,
            content_settings=settings))
        if bytes(answer.get("content_md5") or b"") != plan.md5:
            raise StorageError("rejected", f"blob {name}: the service's MD5 is not the local "
                               "file's")
        return PutResult(name, plan.size, len(data), 1, 0, False)

    def _check(self, name: str, plan: FilePlan) -> None:
        if not self.confirmed(name, plan):
            raise StorageError("rejected", f"blob {name} does not match the local file "
                               "(size or MD5) after upload")

    def _block_lists(self, blob: BlobClient) -> tuple[list[tuple[str, int]], dict[str, int]]:
        """(committed blocks, uncommitted blocks) the service holds for this blob: a committed
        list means an earlier run finished it, uncommitted ones were left by an interrupted
        run."""
        try:
            committed, uncommitted = self._call(lambda: blob.get_block_list("all"))
        except StorageError as exc:
            if exc.code == "BlobNotFound":
                return [], {}
            raise
        return [(b.id, b.size) for b in committed], {b.id: b.size for b in uncommitted}

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except STORAGE_ERRORS as exc:
            raise self._error(classify(exc)) from None

    def _error(self, failure: StorageFailure) -> StorageError:
        if failure.code == "ContainerNotFound":
            self._ready = False  # deleted behind our back: create it again next time
        if failure.kind == "auth" and failure.status is None:
            return StorageError("auth", f"the credentials for {self.endpoint} cannot sign a "
                                "request; check upload.connection_string")
        if failure.status is None:
            return StorageError("unreachable", f"{self.endpoint} unreachable: "
                                f"{failure.error}: {failure.detail}")
        status, code = failure.status, failure.code
        if failure.kind == "auth":
            return StorageError("auth", f"storage refused the credentials "
                                f"({code or 'HTTP ' + str(status)}, HTTP {status}) of "
                                f"{self.endpoint}; check upload.connection_string", code)
        kind: ErrorKind = "unreachable" if failure.kind == "unreachable" else "rejected"
        return StorageError(kind, f"storage answered HTTP {status} {code or ''} for "
                            f"{self.endpoint}: {failure.detail}", code)
