"""xmr's retrieval layer: the public library API.

Importing this package is cheap: torch and open_clip load only when a model is needed.
"""

from index.errors import (
    CatalogMismatchError,
    CatalogUnavailableError,
    CorruptFileError,
    FilterError,
    LibraryBusyError,
    LibraryNotFoundError,
    LibraryVersionError,
    MissingDependencyError,
    XmrError,
)
from index.records import ImageFilter
from index.store import IndexConfig
from retrieval.errors import (
    DeviceError,
    ModelMismatchError,
    ModelNotFoundError,
    QueryError,
    WeightsUnavailableError,
)
from retrieval.ingest.commit import Progress
from retrieval.ingest.config import IngestConfig
from retrieval.library import Library
from retrieval.models.specs import ModelSpec
from retrieval.results import Hit, IndexReport, LibraryInfo, Term, TextHit, TextReport

__all__ = [
    "CatalogMismatchError",
    "CatalogUnavailableError",
    "CorruptFileError",
    "DeviceError",
    "FilterError",
    "Hit",
    "IndexConfig",
    "ImageFilter",
    "IndexReport",
    "IngestConfig",
    "Library",
    "LibraryBusyError",
    "LibraryInfo",
    "LibraryNotFoundError",
    "LibraryVersionError",
    "MissingDependencyError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "ModelSpec",
    "Progress",
    "QueryError",
    "Term",
    "TextHit",
    "TextReport",
    "WeightsUnavailableError",
    "XmrError",
]
