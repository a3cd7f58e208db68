"""Where a library keeps its files, and where the default library lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_LIBRARY = "XMR_LIBRARY"


def sqlite_url(path: str) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``."""
    return f"sqlite:///{path}"


def default_library_dir() -> Path:
    """``$XMR_LIBRARY``, else ``$XDG_DATA_HOME/xmr/default``, else ``~/.local/share/xmr/default``."""
    explicit = os.environ.get(ENV_LIBRARY)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data_home) / "xmr" / "default"


@dataclass(frozen=True)
class LibraryLayout:
    """The files of one library directory."""

    root: Path  # the library directory

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def catalog_file(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def image_vectors(self) -> Path:
        return self.root / "images.vec"

    @property
    def text_vectors(self) -> Path:
        return self.root / "texts.vec"

    @property
    def query_cache(self) -> Path:
        return self.root / "queries.sqlite"

    @property
    def index_config(self) -> Path:
        return self.root / "index.json"

    @property
    def scan_settings(self) -> Path:
        return self.root / "scan.json"

    @property
    def lock(self) -> Path:
        return self.root / "write.lock"

    def files(self) -> list[Path]:
        """Every file xmr may write directly in the directory (present or not)."""
        named = [self.manifest, self.catalog_file, self.image_vectors, self.text_vectors]
        named += [self.query_cache, self.index_config, self.scan_settings, self.lock]
        sqlite_sidecars = [
            path.with_name(path.name + suffix)
            for path in (self.catalog_file, self.query_cache)
            for suffix in ("-wal", "-shm", "-journal")
        ]
        return named + sqlite_sidecars

    def catalog_url(self, override: str = "") -> str:
        return override or sqlite_url(str(self.catalog_file))

    def bytes_on_disk(self) -> int:
        """Total size of the files in the library directory, on-disk index builds included
        (a remote catalog is not counted)."""
        total = 0
        for path in [*self.root.glob("*"), *self.root.glob("*.vec.d/*/*")]:
            if path.is_file():
                total += path.stat().st_size
        return total
