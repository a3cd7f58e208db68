"""xmr's retrieval layer: the public library API.

Importing this package is cheap: torch and open_clip load only when a model is needed.
Every error the library raises on purpose is exported here (all subclass :class:`XmrError`
and a built-in), and importing them imports no torch.
"""

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
    BlipWeightsNotFoundError,
    DeviceError,
    DistributedIndexError,
    EvalSplitTooLargeError,
    ExcludePatternError,
    ExportError,
    ImageDecodeError,
    ItemFileError,
    ItemNotFoundError,
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

__all__ = [
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
