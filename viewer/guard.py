"""Requests from the wrong place: cross-site writes and DNS rebinding, refused before routing.

A browser lets any page it shows send a "simple" request (a form post, a ``no-cors`` fetch
with a text body) to any address, the viewer's included, and sends the viewer's cookie along
when the two are the same site (every port of 127.0.0.1 is). So a page from another local
origin could change reviews. Two checks close that, for every request that changes state
(anything but GET, HEAD and OPTIONS):

* the body must be declared ``application/json``, which a simple request cannot do (a
  cross-origin JSON request needs a CORS preflight, which the viewer never grants);
* where the browser says where the request comes from, it must be this origin:
  ``Sec-Fetch-Site`` is ``same-origin`` (or ``none``: typed by the user), and ``Origin``
  names the host the request was sent to. Scripts (curl, tests) send neither and pass.

A viewer bound to loopback has no token, so a page on another name that resolves to
127.0.0.1 (DNS rebinding) would otherwise be same-origin with it: there the ``Host`` header
must be a loopback name (``localhost``, a loopback address) or one the operator allowed
(``--allow-host``: the name a reverse proxy serves the viewer under, also accepted as the
``Origin`` of writes when the proxy rewrites the ``Host``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN = frozenset({"same-origin", "none"})


def host_name(host: str) -> str:
    """The name in a ``Host`` header value (``[::1]:8090`` -> ``::1``), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def is_loopback_name(name: str) -> bool:
    """``localhost`` (and its sub-names) or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": kind, "message": message}, status=status)


def cross_site_problem(request: web.Request, allowed: Collection[str]) -> str | None:
    """Why a state-changing request is not from this viewer's own page, or None. The page's
    origin is the host the request was sent to, or (behind a reverse proxy that rewrites the
    ``Host``) one of the ``allowed`` names."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_ORIGIN:
        return f"Sec-Fetch-Site is {site[:20]!r}: only the viewer's own page may change state"
    origin = request.headers.get("Origin")
    if origin is not None:
        scheme, _, rest = origin.strip().lower().partition("://")
        host = (request.headers.get("Host") or "").strip().lower()
        rest = rest.rstrip("/")
        if scheme not in ("http", "https") or (rest != host and host_name(rest) not in allowed):
            return (f"Origin {origin[:60]!r} is not this viewer's: only its own page may "
                    "change state")
    return None


def middleware(loopback_bind: bool, allowed_hosts: Collection[str]) -> Callable[
        [web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The checks above; ``loopback_bind`` turns on the ``Host`` check."""
    allowed = {h.lower() for h in allowed_hosts}

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if loopback_bind and host is not None:
            name = host_name(host)
            if not is_loopback_name(name) and name not in allowed:
                return _refuse(421, "misdirected", f"Host {host[:60]!r} is not a name of this "
                               "viewer: it serves on loopback only (see --allow-host)")
        if request.method in SAFE_METHODS:
            return await handler(request)
        problem = cross_site_problem(request, allowed)
        if problem is not None:
            return _refuse(403, "cross_site", problem)
        if request.content_type != "application/json":
            return _refuse(415, "unsupported_media_type",
                           "a request that changes state must send Content-Type: "
                           "application/json")
        return await handler(request)

    return check
