"""Typed errors of the storage layer; each message names what happened and the fix.

Every error subclasses a built-in (so callers may catch ``ValueError`` or ``OSError``)
and :class:`XmrError` (so the CLI can map all of them in one table).
"""

from __future__ import annotations


class XmrError(Exception):
    """Base of every error xmr raises on purpose."""


class MissingDependencyError(XmrError, ImportError):
    """An optional dependency is not installed; the message names the install command."""


class LibraryNotFoundError(XmrError, FileNotFoundError):
    """No library exists at the given directory (and creating one was not asked for)."""


class LibraryVersionError(XmrError, ValueError):
    """The library on disk was written by a newer (or unknown) version of xmr."""


class CorruptFileError(XmrError, ValueError):
    """A persisted file is unreadable; the message says which file and how to recover."""


class CatalogUnavailableError(XmrError, ConnectionError):
    """The catalog's database server cannot be reached or refused the connection."""


class CatalogMismatchError(XmrError, ValueError):
    """The catalog URL given is not the one the library was created with."""


class FilterError(XmrError, ValueError):
    """A search filter (:class:`index.records.ImageFilter`) that cannot mean what was asked."""


class DimensionMismatchError(XmrError, ValueError):
    """Vectors of the wrong width were handed to a vector index."""


class LibraryBusyError(XmrError, RuntimeError):
    """Another process holds the library's write lock."""


class TokenCacheMismatchError(XmrError, ValueError):
    """The token cache was made by another encoder or with another token grid."""


class DiskFullError(XmrError, OSError):
    """The disk (or quota) holding a library file is full; nothing already written is lost."""


class NotRegularFileError(XmrError, OSError):
    """A path that should hold a regular file holds a FIFO, a device, a socket or a folder."""
