"""Safe defaults of ``xmr serve``: loopback unless a token is set, a token on every request,
and request bodies bounded before anything reads them.

The checks are plain ASGI middleware (no FastAPI import here), so they sit in front of every
route, the OpenAPI page and the static files alike.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from index.errors import XmrError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "xmr_token"
HEADER = b"x-xmr-token"


class UnsafeBindError(XmrError, ValueError):
    """The server was asked to listen beyond this machine without a token."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to listen on a non-loopback ``host`` without a token.

    Raises:
        UnsafeBindError: ``host`` is reachable from other machines and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise UnsafeBindError(
            f"listening on {host} lets other machines search your photos; give a token with "
            "--token SECRET or XMR_TOKEN=SECRET (clients send it as 'Authorization: Bearer SECRET' "
            "or open the page once as /?token=SECRET), or bind 127.0.0.1."
        )


def request_token(scope: Scope) -> str:
    """The token a request carries: Bearer header, X-XMR-Token header, ?token= or the cookie."""
    headers = dict(scope.get("headers") or [])
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if HEADER in headers:
        return headers[HEADER].decode("latin-1").strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed Cookie header carries no token
        return ""
    return cookie[COOKIE].value if COOKIE in cookie else ""


async def _reply(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: token check (when a token is set) and a request-body size bound.

    A page request carrying ``?token=`` is answered with a cookie and a redirect to the
    same page without it, so the token leaves the address bar and the browser sends it
    with every later request (thumbnails included).
    """

    def __init__(self, app: ASGIApp, token: str, max_body: int) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token and not hmac.compare_digest(request_token(scope).encode(), self.token.encode()):
            await _reply(send, 401, "this server needs a token: send 'Authorization: Bearer TOKEN' or open /?token=TOKEN once.", [(b"www-authenticate", b"Bearer")])
            return
        if self.token and scope.get("method") == "GET" and scope.get("path") == "/" and b"token=" in scope.get("query_string", b""):
            cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()
            await send({"type": "http.response.start", "status": 303, "headers": [(b"location", b"/"), (b"set-cookie", cookie), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        problem = self._body_problem(scope)
        if problem:
            await _reply(send, *problem)
            return
        await self.app(scope, receive, send)

    def _body_problem(self, scope: Scope) -> tuple[int, str] | None:
        """(status, reason) when the declared body is missing a length or too large."""
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            return None
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is None:
            if headers.get(b"transfer-encoding"):
                return 411, "send the request body with a Content-Length header."
            return None
        try:
            size = int(length)
        except ValueError:
            return 400, "the Content-Length header is not a number."
        if size > self.max_body:
            return 413, f"the request body is {size} bytes; this server takes at most {self.max_body} (see --max-upload-mb)."
        return None
