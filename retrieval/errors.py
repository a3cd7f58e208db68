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
