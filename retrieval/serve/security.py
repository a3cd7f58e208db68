"""Safe defaults of ``xmr serve``: loopback unless a token is set, a token on every request,
only this machine's host names without a token (DNS rebinding), same-origin writes, and
request bodies bounded before anything reads them.

The checks are plain ASGI middleware (no FastAPI import here), so they sit in front of every
route, the OpenAPI page and the static files alike.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from retrieval.errors import UnsafeBindError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "xmr_token"
HEADER = b"x-xmr-token"


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


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or an origin's authority: ``[::1]:8765`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """True for loopback names and addresses, ``*.localhost`` and the names in ``allowed``.

    A server without a token must not answer a page that reached it through DNS rebinding:
    the browser then sends the attacker's host name, never one of these.
    """
    name = host_name(host)
    return bool(name) and (is_loopback(name) or name.endswith(".localhost") or name in allowed)


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


def same_origin(origin: bytes | None, host: str, allowed: frozenset[str] = frozenset()) -> bool:
    """True when a request has no ``Origin`` (not a browser), or one naming this very host or
    a host name in ``allowed`` (a reverse proxy that rewrites ``Host``)."""
    if origin is None:
        return True
    value = origin.decode("latin-1").strip().lower()
    scheme, sep, authority = value.partition("://")
    if not sep or scheme not in {"http", "https"}:  # "null" (sandboxed frames, file:) included
        return False
    authority = authority.split("/", 1)[0]
    return (bool(host) and authority == host.strip().lower()) or host_name(authority) in allowed


async def _reply(send: Send, status: int, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: Host and Origin checks, the token (when one is set) and a body bound.

    Without a token only loopback host names (and ``allowed_hosts``) are answered, so a web
    page that rebinds its own name to 127.0.0.1 cannot read the library. Requests that
    change state (POST and the like) from a browser must come from the server's own origin.
    A page request carrying ``?token=`` is answered with a cookie and a redirect to the
    same page without it, so the token leaves the address bar and the browser sends it
    with every later request (thumbnails included).
    """

    def __init__(self, app: ASGIApp, token: str, max_body: int, allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.token and not host_allowed(host, self.allowed_hosts):
            await _reply(
                send,
                421,
                f"this server answers only to localhost and 127.0.0.1, not to the host name {host!r} (a page of another site may be trying to read it). To use another name, start it with --allow-host NAME or with a token.",
            )
            return
        if scope.get("method") not in {"GET", "HEAD", "OPTIONS"} and not same_origin(
            headers.get(b"origin"), host, self.allowed_hosts
        ):
            await _reply(
                send,
                403,
                "this request came from a page of another site; xmr serve takes searches only from its own page or from clients that send no Origin header.",
            )
            return
        if self.token and not hmac.compare_digest(request_token(scope).encode(), self.token.encode()):
            await _reply(
                send,
                401,
                "this server needs a token: send 'Authorization: Bearer TOKEN' or open /?token=TOKEN once.",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if (
            self.token
            and scope.get("method") == "GET"
            and scope.get("path") == "/"
            and b"token=" in scope.get("query_string", b"")
        ):
            cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie), (b"content-length", b"0")],
                }
            )
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
            return (
                413,
                f"the request body is {size} bytes; this server takes at most {self.max_body} (see --max-upload-mb).",
            )
        return None
