"""The command's verbosity: the library's ``logging`` records on stderr, and -q for silence."""

from __future__ import annotations

import logging

__all__ = ["configure", "quiet"]

_state = {"verbosity": 0}


def configure(verbose: int, quiet_flag: bool) -> None:
    """Send the library's log records to stderr: warnings always, info with -v, debug with -vv,
    errors only with -q (which also hides progress bars and notes)."""
    verbosity = -1 if quiet_flag else verbose
    _state["verbosity"] = verbosity
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(levelname)s: %(message)s" if verbosity < 2 else "%(levelname)s %(name)s: %(message)s")
    )
    for name in ("retrieval", "index"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def quiet() -> bool:
    """True when -q asked for errors only."""
    return _state["verbosity"] < 0
