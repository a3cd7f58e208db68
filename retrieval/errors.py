"""Typed errors of the retrieval layer (models, queries); storage errors live in index.errors."""

from __future__ import annotations

from index.errors import XmrError


class ModelNotFoundError(XmrError, ValueError):
    """``--model``/``--pretrained`` name nothing that can be loaded."""


class WeightsUnavailableError(XmrError, RuntimeError):
    """Weights are not cached and cannot be downloaded (offline or unreachable)."""


class DeviceError(XmrError, ValueError):
    """The device asked for is unknown or not available on this machine."""


class ModelMismatchError(XmrError, ValueError):
    """The library was built with another model than the one asked for."""


class QueryError(XmrError, ValueError):
    """A search was asked for without a usable query."""


class TrainingError(XmrError, ValueError):
    """A training run cannot start or resume as asked; the message says why."""


class EvalSplitTooLargeError(XmrError, ValueError):
    """An eval split was asked for more lines than the grammar has captions."""


class ImageDecodeError(XmrError, ValueError):
    """A file is not a readable image; the message says why in plain words."""


class RequestLimitError(XmrError, ValueError):
    """A request goes beyond one of the server's limits (the message names it)."""


class UploadTooLargeError(XmrError, ValueError):
    """An uploaded image has more bytes or pixels than the server takes."""


class UploadNotFoundError(XmrError, LookupError):
    """An upload id the server does not (or no longer) hold."""


class RerankUnavailableError(XmrError, ValueError):
    """Reranking was asked of a server started without a reranker."""


class UnsafeBindError(XmrError, ValueError):
    """The server was asked to listen beyond this machine without a token."""


class ItemNotFoundError(XmrError, LookupError):
    """No indexed image has this id (never indexed, failed, or removed since)."""


class ItemFileError(XmrError, OSError):
    """The catalogued file is gone or unreadable now (moved or deleted since the last index run)."""


class RerankerError(XmrError, ValueError):
    """A reranker cannot be built, loaded or used as asked; the message says why and what to do."""


class RerankerMismatchError(RerankerError):
    """The reranker was trained on another encoder than the library's."""


class BlipWeightsNotFoundError(RerankerError):
    """The BLIP weights are neither a local folder nor in the Hugging Face cache."""


class PairsFormatError(XmrError, ValueError):
    """A pairs file is malformed; the message names the file and line."""


class DistributedIndexError(XmrError, RuntimeError):
    """The Ray run failed; the batches committed before the failure are kept."""


class ArgumentTypeError(XmrError, TypeError):
    """An argument of the library API has a type it cannot take; the message names what it takes."""


class LibraryClosedError(XmrError, RuntimeError):
    """The library was closed; open it again (``Library.open``) to use it."""


class VideoDecodeError(XmrError, ValueError):
    """A video file cannot be decoded: not a video, no video stream, an unsupported codec, or damaged."""


class RangeNotSatisfiableError(XmrError, ValueError):
    """An HTTP Range asks for bytes past the end of the file (the server answers 416)."""


class ExcludePatternError(XmrError, ValueError):
    """An ``--exclude`` pattern that gitignore syntax cannot read."""


class ExportError(XmrError, ValueError):
    """An ONNX export cannot be made, or an export folder is incomplete, changed or unsupported."""
