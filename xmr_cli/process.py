"""How the ``xmr`` process ends: a command that has closed everything it opened may leave at once.

Tearing the interpreter down after a search (freeing every module's objects) takes 0.15-0.3 s
on a 2-core machine, as long as a third of a whole new-text search. A command that marks its
process with :func:`leave_quickly` once its library is closed and its output written ends with
``os._exit`` after flushing the output streams and the log handlers: nothing it wrote is lost
(catalog and query-cache writes are committed when the library closes), nothing is left to
clean (xmr registers no exit handlers). Only the console entry point does this; code calling
the commands in-process (tests, other programs) is never ended.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["end", "leave_quickly"]

_state = {"quick": False}


def leave_quickly() -> None:
    """Mark this process as one that may skip interpreter teardown when its command returns."""
    _state["quick"] = True


def end(code: object) -> None:
    """End the process with exit status ``code`` (as ``SystemExit`` takes it): at once when a
    command asked for it with :func:`leave_quickly`, else by raising ``SystemExit`` as usual."""
    if not _state["quick"]:
        raise SystemExit(code)
    status = 0 if code is None else code if isinstance(code, int) else 1
    if not isinstance(code, (int, type(None))):
        print(code, file=sys.stderr)  # what SystemExit does with a message
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
    except (OSError, ValueError):  # a closed pipe: the reader left early (`| head`), which is no error
        pass
    os._exit(status)
