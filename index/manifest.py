"""The library's versioned manifest: what made the library and how to load it again.

The manifest is a small JSON file written atomically. It carries a schema version
(checked on open) and the identity of the model whose vectors the library holds, so
later commands need no ``--model`` and a different model is refused.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError, LibraryVersionError

MANIFEST_NAME = "manifest.json"
FORMAT = "xmr-library"
# 1: first release (catalog + image vectors + text vectors, model identity).
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelIdentity:
    """Which encoder produced a library's vectors, and how to load it again."""

    arch: str  # open_clip architecture name, e.g. "ViT-B-32"
    pretrained: str  # open_clip tag, or "file"/"local-dir" for local weights, "random" for none
    weights_sha256: str  # sha256 of the local weights file; "" when a tag names the weights
    embed_dim: int  # width of the shared embedding space
    spec: str  # the --model value that loads this model again
    spec_pretrained: str = ""  # the --pretrained value that goes with spec ("" for none)

    def label(self) -> str:
        """A short human name, e.g. ``ViT-B-32/laion2b_s34b_b79k``."""
        if self.weights_sha256:
            return f"{self.arch} ({self.pretrained} weights sha256 {self.weights_sha256[:12]})"
        return f"{self.arch}/{self.pretrained}"

    def same_model(self, other: ModelIdentity) -> bool:
        """True when both identities produce the same vectors."""
        if (self.arch, self.embed_dim) != (other.arch, other.embed_dim):
            return False
        if self.weights_sha256 or other.weights_sha256:
            return self.weights_sha256 == other.weights_sha256
        return self.pretrained == other.pretrained

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelIdentity:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``."""

    model: ModelIdentity  # the encoder of every vector in the library
    catalog_url: str = ""  # SQLAlchemy URL of the catalog; "" means the SQLite file in the library
    schema: int = SCHEMA_VERSION  # manifest/library layout version
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "schema": self.schema,
            "created_at": self.created_at,
            "catalog_url": self.catalog_url,
            "model": self.model.to_dict(),
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def manifest_path(directory: Path) -> Path:
    return Path(directory) / MANIFEST_NAME


def read_manifest(directory: Path) -> Manifest | None:
    """Read the manifest of the library in ``directory``; None when there is none yet.

    Raises:
        CorruptFileError: the file is not a readable xmr manifest.
        LibraryVersionError: the library was written by a newer xmr.
    """
    path = manifest_path(directory)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path} is unreadable ({exc}). Restore it from a backup, or move the library "
            "directory aside and index again."
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not an xmr library manifest.")
    schema = raw.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise LibraryVersionError(
            f"{path} has schema {schema!r}; this xmr reads up to {SCHEMA_VERSION}. Upgrade xmr (pip install -U xmr)."
        )
    try:
        model = ModelIdentity.from_dict(raw["model"])
        return Manifest(
            model=model,
            catalog_url=str(raw.get("catalog_url") or ""),
            schema=schema,
            created_at=str(raw.get("created_at", "")),
        )
    except (KeyError, TypeError, AttributeError) as exc:  # AttributeError: "model" not an object
        raise CorruptFileError(f"{path} is missing fields ({exc}); restore it from a backup.") from exc


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write the manifest atomically."""
    atomic_write_bytes(manifest_path(directory), manifest.to_json())
