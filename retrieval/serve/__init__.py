"""``xmr serve``: an HTTP API and a search page over one library (extra ``xmr[serve]``).

Importing this package is cheap; FastAPI and uvicorn load in :func:`create_app` and
:func:`run_server`, each failing with the install command when missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrieval.errors import UnsafeBindError
from retrieval.serve.config import ServeConfig
from retrieval.serve.security import check_bind, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

    from retrieval.library import Library

__all__ = [
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


def create_app(library: Library, config: ServeConfig = ServeConfig(), reranker: object = None) -> FastAPI:
    """The FastAPI app for ``library`` (see :func:`retrieval.serve.app.create_app`)."""
    require_serve()
    from retrieval.serve.app import create_app as _create

    return _create(library, config, reranker)


def run_server(library: Library, config: ServeConfig, log_level: str = "info") -> None:
    """Serve ``library`` until interrupted (blocks).

    Raises:
        UnsafeBindError: a non-loopback host without a token.
        MissingDependencyError: FastAPI/uvicorn are not installed.
    """
    check_bind(config.host, config.token)
    app = create_app(library, config)
    import uvicorn

    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, server_header=False)
