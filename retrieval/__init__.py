"""xmr's retrieval layer: the public library API.

Importing this package is cheap: each name below is imported on first use (PEP 562), so
``import retrieval.search.query`` does not pay for the indexing pipeline, and torch and
open_clip load only when a model is needed. Every error the library raises on purpose is
exported here (all subclass :class:`XmrError` and a built-in), and importing them imports
no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names as EXPORTS, for type checkers (tests/retrieval/test_exports.py keeps them equal)
    from index.config import IndexConfig
    from index.errors import (
        CatalogMismatchError,
        CatalogUnavailableError,
        CorruptFileError,
        DimensionMismatchError,
        DiskFullError,
        FilterError,
        LibraryBusyError,
        LibraryNotFoundError,
        LibraryVersionError,
        MissingDependencyError,
        NotRegularFileError,
        TokenCacheMismatchError,
        XmrError,
    )
    from index.records import ImageFilter
    from retrieval.errors import (
        ArgumentTypeError,
        BlipWeightsNotFoundError,
        DeviceError,
        DistributedIndexError,
        EvalSplitTooLargeError,
        ExcludePatternError,
        ExportError,
        ImageDecodeError,
        ItemFileError,
        ItemNotFoundError,
        LibraryClosedError,
        ModelMismatchError,
        ModelNotFoundError,
        PairsFormatError,
        QueryError,
        RangeNotSatisfiableError,
        RequestLimitError,
        RerankerError,
        RerankerMismatchError,
        RerankUnavailableError,
        TrainingError,
        UnsafeBindError,
        UploadNotFoundError,
        UploadTooLargeError,
        VideoDecodeError,
        WeightsUnavailableError,
    )
    from retrieval.ingest.commit import Progress
    from retrieval.ingest.config import IngestConfig
    from retrieval.ingest.ocr import OcrConfig
    from retrieval.ingest.ocr_pass import OcrProgress
    from retrieval.library import Library
    from retrieval.models.specs import ModelSpec
    from retrieval.results import (
        DuplicateGroup,
        DuplicateMember,
        DuplicateReport,
        Hit,
        IndexReport,
        LibraryInfo,
        Match,
        MomentHit,
        Term,
        TextHit,
        TextReport,
    )
    from retrieval.search.duplicates import DuplicateConfig
    from retrieval.video.config import SampleConfig

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    "ArgumentTypeError": "retrieval.errors",
    "BlipWeightsNotFoundError": "retrieval.errors",
    "CatalogMismatchError": "index.errors",
    "CatalogUnavailableError": "index.errors",
    "CorruptFileError": "index.errors",
    "DeviceError": "retrieval.errors",
    "DimensionMismatchError": "index.errors",
    "DiskFullError": "index.errors",
    "DistributedIndexError": "retrieval.errors",
    "DuplicateConfig": "retrieval.search.duplicates",
    "DuplicateGroup": "retrieval.results",
    "DuplicateMember": "retrieval.results",
    "DuplicateReport": "retrieval.results",
    "EvalSplitTooLargeError": "retrieval.errors",
    "ExcludePatternError": "retrieval.errors",
    "ExportError": "retrieval.errors",
    "FilterError": "index.errors",
    "Hit": "retrieval.results",
    "ImageDecodeError": "retrieval.errors",
    "ImageFilter": "index.records",
    "IndexConfig": "index.config",
    "IndexReport": "retrieval.results",
    "IngestConfig": "retrieval.ingest.config",
    "ItemFileError": "retrieval.errors",
    "ItemNotFoundError": "retrieval.errors",
    "Library": "retrieval.library",
    "LibraryBusyError": "index.errors",
    "LibraryClosedError": "retrieval.errors",
    "LibraryInfo": "retrieval.results",
    "LibraryNotFoundError": "index.errors",
    "LibraryVersionError": "index.errors",
    "Match": "retrieval.results",
    "MissingDependencyError": "index.errors",
    "ModelMismatchError": "retrieval.errors",
    "ModelNotFoundError": "retrieval.errors",
    "ModelSpec": "retrieval.models.specs",
    "MomentHit": "retrieval.results",
    "NotRegularFileError": "index.errors",
    "OcrConfig": "retrieval.ingest.ocr",
    "OcrProgress": "retrieval.ingest.ocr_pass",
    "PairsFormatError": "retrieval.errors",
    "Progress": "retrieval.ingest.commit",
    "QueryError": "retrieval.errors",
    "RangeNotSatisfiableError": "retrieval.errors",
    "RequestLimitError": "retrieval.errors",
    "RerankUnavailableError": "retrieval.errors",
    "RerankerError": "retrieval.errors",
    "RerankerMismatchError": "retrieval.errors",
    "SampleConfig": "retrieval.video.config",
    "Term": "retrieval.results",
    "TextHit": "retrieval.results",
    "TextReport": "retrieval.results",
    "TokenCacheMismatchError": "index.errors",
    "TrainingError": "retrieval.errors",
    "UnsafeBindError": "retrieval.errors",
    "UploadNotFoundError": "retrieval.errors",
    "UploadTooLargeError": "retrieval.errors",
    "VideoDecodeError": "retrieval.errors",
    "WeightsUnavailableError": "retrieval.errors",
    "XmrError": "index.errors",
}

__all__ = [
    "ArgumentTypeError",
    "BlipWeightsNotFoundError",
    "CatalogMismatchError",
    "CatalogUnavailableError",
    "CorruptFileError",
    "DeviceError",
    "DimensionMismatchError",
    "DiskFullError",
    "DistributedIndexError",
    "DuplicateConfig",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicateReport",
    "EvalSplitTooLargeError",
    "ExcludePatternError",
    "ExportError",
    "FilterError",
    "Hit",
    "ImageDecodeError",
    "ImageFilter",
    "IndexConfig",
    "IndexReport",
    "IngestConfig",
    "ItemFileError",
    "ItemNotFoundError",
    "Library",
    "LibraryBusyError",
    "LibraryClosedError",
    "LibraryInfo",
    "LibraryNotFoundError",
    "LibraryVersionError",
    "Match",
    "MissingDependencyError",
    "MomentHit",
    "ModelMismatchError",
    "ModelNotFoundError",
    "ModelSpec",
    "NotRegularFileError",
    "OcrConfig",
    "OcrProgress",
    "PairsFormatError",
    "Progress",
    "QueryError",
    "RangeNotSatisfiableError",
    "RequestLimitError",
    "RerankUnavailableError",
    "RerankerError",
    "RerankerMismatchError",
    "SampleConfig",
    "Term",
    "TextHit",
    "TextReport",
    "TokenCacheMismatchError",
    "TrainingError",
    "UnsafeBindError",
    "UploadNotFoundError",
    "UploadTooLargeError",
    "VideoDecodeError",
    "WeightsUnavailableError",
    "XmrError",
]


def __getattr__(name: str) -> object:
    """Import an exported name from its module on first use, then keep it here."""
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})
