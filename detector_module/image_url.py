"""Fetching the image a Custom Vision ``.../url`` request names, without letting the request
steer the detector anywhere else.

A URL a client sends is an instruction to open a connection from inside the device's network
(server-side request forgery), so it is held to a policy before and during the fetch:

- only ``http`` and ``https``, and only hosts on ``custom_vision.url_allowed_hosts`` (exact
  names or IP literals as the URL writes them);
- every address the host resolves to is checked inside the connector's resolver, so the
  address connected to is the one checked (a name cannot be re-pointed between check and
  connect); a link-local address (169.254.0.0/16, fe80::/10: where cloud metadata services
  answer), Azure's platform address 168.63.129.16, and unspecified or multicast addresses
  are refused whatever the allowlist says;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each target held to the
  same policy, so a redirect to a host off the allowlist is refused;
- no proxy from the environment, no automatic decompression, and the body is read by
  :func:`detector_module.inputs.read_stream` under the upload limits (size and time); the
  caller then checks pixels as for an upload.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from detector_module.inputs import ApiError, check_encoding, excerpt, read_stream
from infra.addresses import ip_of, is_metadata
from infra.logs import event, redact

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class UrlPolicy:
    """What a fetch may do: where (``allowed_hosts``, lower case), how much and how long."""

    allowed_hosts: frozenset[str]
    limit: int
    timeout_s: float

    @classmethod
    def of(cls, hosts: Collection[str], limit: int, timeout_s: float) -> UrlPolicy:
        return cls(frozenset(h.strip("[]").lower() for h in hosts), limit, timeout_s)


class RefusedAddress(Exception):
    """A host that is, or resolves to, an address the detector never connects to."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"host {host} resolves to {address}, an address the detector never "
                         "fetches from (link-local, cloud metadata, unspecified or multicast)")


def forbidden(address: str) -> bool:
    """Whether a fetch may never connect to this address."""
    ip = ip_of(address)
    return is_metadata(ip) or ip.is_unspecified or ip.is_multicast


class CheckedResolver(ThreadedResolver):
    """The system resolver, refusing a name any of whose addresses is forbidden."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[dict[str, Any]]:
        answers = await super().resolve(host, port, family)
        for answer in answers:
            if forbidden(answer["host"]):
                raise RefusedAddress(host, answer["host"])
        return answers


def _refused(message: str, url: URL | str) -> ApiError:
    event(log, logging.WARNING, "customvision.url_refused", url=redact(str(url))[:200],
          reason=message)
    return ApiError(400, "url_refused", message)


def checked_url(text: str, policy: UrlPolicy) -> URL:
    """The URL, if the policy lets it be fetched (its host literal checked here; a name's
    addresses are checked as it is resolved)."""
    try:
        url = URL(text)
    except (ValueError, TypeError):
        raise ApiError(400, "bad_request", f"url {excerpt(text)} is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _refused(f"url {excerpt(text)} is not an http(s) URL with a host", text)
    host = url.host.lower()
    if host not in policy.allowed_hosts:
        raise _refused(f"host {excerpt(host)} is not on custom_vision.url_allowed_hosts", url)
    try:
        literal = forbidden(host)
    except ValueError:  # a name, not an IP literal
        literal = False
    if literal:
        raise _refused(str(RefusedAddress(host, host)), url)
    return url


async def fetch_image(text: str, policy: UrlPolicy) -> bytes:
    """The bytes at ``text`` (redirects followed under the policy), or the ApiError that says
    why not: 400 ``url_refused`` (policy), 400 ``url_failed`` (the server or the network),
    413/408 as for an upload."""
    url = checked_url(text, policy)
    timeout = aiohttp.ClientTimeout(total=None, connect=policy.timeout_s,
                                    sock_read=policy.timeout_s)
    connector = aiohttp.TCPConnector(resolver=CheckedResolver(), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                     auto_decompress=False) as session:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in REDIRECTS and "Location" in response.headers:
                        url = checked_url(str(url.join(URL(response.headers["Location"]))),
                                          policy)
                        continue
                    if response.status != 200:
                        raise ApiError(400, "url_failed", f"{url.host} answered HTTP "
                                       f"{response.status} for the image URL")
                    check_encoding(response.headers)
                    data = await read_stream(response.content.read, response.content_length,
                                             policy.limit, policy.timeout_s,
                                             "the image at the URL")
            except RefusedAddress as exc:
                raise _refused(str(exc), url) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(400, "url_failed", f"could not fetch the image from "
                               f"{url.host}: {type(exc).__name__} {excerpt(str(exc))}") from None
            event(log, logging.INFO, "customvision.url_fetched", host=url.host, bytes=len(data))
            return data
    raise _refused(f"the image URL redirected more than {MAX_REDIRECTS} times", url)
