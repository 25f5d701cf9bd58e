"""Access token for a viewer reachable beyond this machine.

Scripts send ``Authorization: Bearer <token>``. A browser logs in once with ``?token=`` in the
URL: the viewer answers with an HttpOnly, SameSite=Strict cookie and redirects to the same
URL without the token, so the token leaves the address bar and ``<video>``/``<img>`` requests
(which cannot carry a header) are authorised by the cookie. The cookie holds an HMAC of the
token, not the token. Every comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

COOKIE = "graffiti_viewer"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"graffiti-viewer-session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    # Header bytes that are not UTF-8 reach us as surrogates: compared, never an error.
    return hmac.compare_digest(a.encode(errors="surrogateescape"),
                               b.encode(errors="surrogateescape"))


def middleware(token: str | None) -> Callable[[web.Request, Handler], Awaitable[
        web.StreamResponse]]:
    """Let requests through only with the token (no token configured: everything passes)."""
    session = session_value(token) if token else ""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not token:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and _same(header[7:].strip(), token):
            return await handler(request)
        cookie = request.cookies.get(COOKIE, "")
        if cookie and _same(cookie, session):
            return await handler(request)
        given = request.query.get("token")
        if given and _same(given, token):
            if request.method != "GET":
                return await handler(request)
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query)
            response = web.Response(status=303, headers={"Location": str(target)})
            response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/",
                                secure=request.secure)
            return response
        return web.json_response(
            {"error": "unauthorized", "message": "this viewer needs its access token: open "
             "the page once as /?token=<token>, or send Authorization: Bearer <token>"},
            status=401, headers={"WWW-Authenticate": 'Bearer realm="graffiti-viewer"'})

    return check
