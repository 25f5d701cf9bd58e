"""Clients for the clip container and what their failures mean (the uploader and the viewer).

Both talk to Blob Storage on IoT Edge, a cloud account or Azurite with the same choices: the
API version from their settings (Blob on Edge refuses newer ones than it knows), timeouts from
their settings, and the SDK's own retries off, because the uploader resumes instead and the
viewer answers 503 for the browser to retry. Both must also tell an endpoint that is away from
credentials refused from a request refused, to decide what to do next: :func:`classify` is the
one place that reads the SDK's exceptions. Nothing here ever quotes a connection string.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient
from pydantic import SecretStr

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

#: The SDK exceptions :func:`classify` sorts; anything else is a bug, not a storage failure.
STORAGE_ERRORS = (ServiceRequestError, ServiceResponseError, HttpResponseError)
StorageException = ServiceRequestError | ServiceResponseError | HttpResponseError
FailureKind = Literal["unreachable", "auth", "not_found", "conflict", "rejected"]
Client = TypeVar("Client", "BlobServiceClient", "AsyncBlobServiceClient")


class ConnectionStringError(ValueError):
    """No connection string, or one the SDK cannot read (its own message may quote it).
    ``problem`` says what is wrong with it, without quoting any of it."""

    def __init__(self, missing: bool, problem: str | None = None) -> None:
        super().__init__("no storage connection string" if missing
                         else f"the storage connection string is not valid: {problem}"
                         if problem else "the storage connection string is not valid")
        self.missing = missing
        self.problem = problem


def key_problem(connection_string: str) -> str | None:
    """What is wrong with the connection string's ``AccountKey``, or None.

    The SDK takes any text as a key and only fails when it signs a request, on every request,
    with an error that looks like a refusal by the service. A key is the base64 of the
    account's secret, so anything else can be told at once, and said as a setting error."""
    parts = dict(part.partition("=")[::2] for part in connection_string.split(";") if part)
    keys = {name.lower(): value for name, value in parts.items()}
    if "accountkey" not in keys:
        return None
    key = keys["accountkey"].strip()
    if not key:
        return "AccountKey is empty"
    try:
        secret = base64.b64decode(key, validate=True)
    except binascii.Error:
        return (f"AccountKey is not valid base64 ({len(key)} characters; a storage key is "
                "the 88-character base64 text the account shows)")
    if not secret:
        return "AccountKey is empty"
    return None


def describe(client: BlobServiceClient | AsyncBlobServiceClient, container: str) -> str:
    """Which container on which account a client talks to, for messages an operator reads."""
    return (f"blob endpoint {client.scheme}://{client.primary_hostname} (account "
            f"{client.account_name or '?'!r}, container {container!r})")


@dataclass(frozen=True)
class StorageFailure:
    """What a failed storage call means for the caller.

    ``unreachable``: the endpoint is away or overloaded (wait, then try again); ``auth``: the
    credentials were refused (waiting will not help until they change); ``not_found``: no such
    blob or container; ``conflict``: an ETag condition failed or the blob already exists;
    ``rejected``: this request was refused for another reason."""

    kind: FailureKind
    status: int | None  # HTTP status; None when the endpoint did not answer
    code: str | None  # the service's error code, e.g. BlobNotFound
    error: str  # the SDK exception's class name
    detail: str  # the first line of the SDK's message


def service_client(connection_string: SecretStr | None, *, api_version: str, timeout_s: float,
                   **options: int) -> BlobServiceClient:
    """A synchronous client; ``options`` are the SDK's transfer sizes."""
    return _from_connection_string(BlobServiceClient, connection_string,
                                   api_version=api_version, timeout_s=timeout_s, **options)


def async_service_client(connection_string: SecretStr | None, *, api_version: str,
                         timeout_s: float) -> AsyncBlobServiceClient:
    """An asyncio client (imported here: only the viewer needs aiohttp's transport)."""
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

    return _from_connection_string(AsyncBlobServiceClient, connection_string,
                                   api_version=api_version, timeout_s=timeout_s)


def _from_connection_string(cls: type[Client], connection_string: SecretStr | None, *,
                            api_version: str, timeout_s: float, **options: int) -> Client:
    secret = connection_string.get_secret_value() if connection_string is not None else ""
    if not secret:
        raise ConnectionStringError(missing=True)
    problem = key_problem(secret)
    if problem is not None:
        raise ConnectionStringError(missing=False, problem=problem)
    try:
        return cls.from_connection_string(secret, api_version=api_version, retry_total=0,
                                          connection_timeout=timeout_s, read_timeout=timeout_s,
                                          **options)
    except ValueError:
        raise ConnectionStringError(missing=False) from None


def classify(exc: StorageException) -> StorageFailure:
    """What a storage exception (one of :data:`STORAGE_ERRORS`) means."""
    error, detail = type(exc).__name__, (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageFailure("unreachable", None, None, error, detail)
    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        # The request could not even be signed (a key the SDK cannot use): no answer, but
        # waiting will not help either.
        return StorageFailure("auth", None, None, error, "the credentials cannot sign a "
                              "request")
    status = exc.status_code or 0
    code = str(exc.error_code.value if hasattr(exc.error_code, "value")
               else exc.error_code or "") or None
    kind: FailureKind
    if isinstance(exc, ResourceNotFoundError):
        kind = "not_found"
    elif isinstance(exc, ResourceModifiedError | ResourceExistsError) or status == 412:
        kind = "conflict"
    elif status in (401, 403):
        kind = "auth"
    elif status >= 500 or status in (408, 429):
        kind = "unreachable"
    else:
        kind = "rejected"
    return StorageFailure(kind, status, code, error, detail)
