"""Settings of ``xmr serve``: where it listens, who may ask, and how big a request may be."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ENV_TOKEN = "XMR_TOKEN"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xmr/thumbnails``, else ``~/.cache/xmr/thumbnails``."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache_home) / "xmr" / "thumbnails"


@dataclass(frozen=True)
class ServeConfig:
    """How the HTTP server behaves; every limit turns an oversize request into a 4xx."""

    host: str = DEFAULT_HOST  # address to bind; anything but loopback needs a token
    port: int = DEFAULT_PORT  # TCP port
    token: str = ""  # when set, every request must carry it (header, ?token= or cookie)
    allowed_hosts: tuple[str, ...] = ()  # host names answered without a token besides localhost (a reverse proxy's)
    max_upload_bytes: int = 20 * 2**20  # largest uploaded query image, in bytes
    max_pixels: int = 50_000_000  # largest uploaded query image, in pixels (header-checked)
    max_query_chars: int = 1_000  # longest text in a query
    max_terms: int = 16  # most texts + images + items in one query
    max_k: int = 100  # largest page size
    max_offset: int = 10_000  # deepest page start
    thumb_sides: tuple[int, ...] = (256, 1280)  # thumbnail sizes served (small grid, large view)
    cache_dir: Path | None = None  # thumbnail cache; None: default_cache_dir() / library id
    reranker: str = ""  # reranker spec loaded at start ("" none); see Library.load_reranker
    rerank_k: int = 50  # candidates the reranker rescores
    threads: int = 8  # worker threads running searches and thumbnails

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if self.max_k < 1 or self.max_terms < 1 or self.max_query_chars < 1:
            raise ValueError("max_k, max_terms and max_query_chars must be at least 1")
        if not self.thumb_sides or min(self.thumb_sides) < 16:
            raise ValueError("thumb_sides must name sizes of at least 16 pixels")
