"""``xmr serve``: an HTTP API and a search page over one library (extra ``xmr[serve]``).

Importing this package is cheap; FastAPI and uvicorn load in :func:`create_app` and
:func:`run_server`, each failing with the install command when missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from retrieval.errors import UnsafeBindError
from retrieval.serve.config import ServeConfig
from retrieval.serve.security import check_bind, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

    from retrieval.library import Library
    from retrieval.rerank.base import Reranker

__all__ = [
    "TokenRedactor",
    "redact_access_log",
    "redact_token",
    "SERVE_HINT",
    "ServeConfig",
    "UnsafeBindError",
    "check_bind",
    "create_app",
    "is_loopback",
    "require_serve",
    "run_server",
]

SERVE_HINT = "xmr serve needs FastAPI and uvicorn: pip install 'xmr[serve]'"


def require_serve() -> None:
    """Import the server's dependencies or raise MissingDependencyError naming the extra."""
    from index.deps import attempt_import

    for module in ("fastapi", "uvicorn", "python_multipart"):
        attempt_import(module, SERVE_HINT)


def create_app(library: Library, config: ServeConfig = ServeConfig(), reranker: Reranker | None = None) -> FastAPI:
    """The FastAPI app for ``library`` (see :func:`retrieval.serve.app.create_app`)."""
    require_serve()
    from retrieval.serve.app import create_app as _create

    return _create(library, config, reranker)


def run_server(
    library: Library, config: ServeConfig, log_level: str = "info", on_ready: Callable[[], None] | None = None
) -> None:
    """Serve ``library`` until interrupted (blocks).

    ``on_ready()`` is called once the server answers: the model is loaded (the app's start-up
    warms it) and the socket listens, so an address announced then works at once.

    Raises:
        UnsafeBindError: a non-loopback host without a token.
        MissingDependencyError: FastAPI/uvicorn are not installed.
    """
    check_bind(config.host, config.token)
    app = create_app(library, config)
    import uvicorn

    redact_access_log()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_ready is not None:
                on_ready()

    settings = uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level, server_header=False)
    Server(settings).run()


class TokenRedactor(logging.Filter):
    """Blanks ``token=...`` in uvicorn's access-log lines (``GET /?token=SECRET``): no secret in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_token(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact_token(record.msg) if isinstance(record.msg, str) else record.msg
        return True


def redact_token(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced by ``***``."""
    return re.sub(r"(?i)([?&;]token=)[^&\s\"]*", r"\1***", text)


def redact_access_log() -> None:
    """Install :class:`TokenRedactor` on uvicorn's access and error loggers (once)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactor) for f in logger.filters):
            logger.addFilter(TokenRedactor())
