"""Exit codes, and the one place that maps the library's errors to messages and exit codes."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from xmr_cli.escape import defanged, shown
from xmr_cli.output import err

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NO_RESULTS",
    "EXIT_PIPE_CLOSED",
    "check_some_exist",
    "fail",
    "friendly_errors",
]

# Exit codes: 0 results, 1 no results, 2 bad input or unusable library/model, 70 internal
# error (a bug), 130 interrupted, 141 the output's reader left.
EXIT_NO_RESULTS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: what `cat` and `grep` give when the reader left (`| head`)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Say ``message`` as an error on stderr and exit with ``code`` (2: bad input)."""
    err.print(f"[red]error:[/] {escape(defanged(message))}", highlight=False)
    raise typer.Exit(code)


def check_some_exist(paths: Sequence[Path]) -> None:
    """Exit 2 at once when not one of ``paths`` exists: nothing to index, so no model is loaded
    and no library is made (when some exist, the run goes on and reports the missing ones)."""
    if paths and not any(path.expanduser().exists() for path in paths):
        names = ", ".join(shown(str(path)) for path in paths)
        fail(f"{names}: no such file or folder; nothing was indexed (a library there keeps its images).")


def friendly_errors(command: Callable) -> Callable:
    """Wrap a command: turn the library's typed errors into one-line messages and exit codes.

    ``XmrError`` (bad input, unusable library or model) exits 2 with its message; Ctrl-C
    exits 130; a reader of the output that left (``| head``) exits 141 without a word; typer's own exits and usage errors pass through; anything else is a bug and
    exits 70 with the traceback (never 1, which means "no results").
    """

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        from index.errors import XmrError

        try:
            command(*args, **kwargs)
        except XmrError as exc:
            err.print(f"[red]error:[/] {escape(defanged(str(exc)))}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except BrokenPipeError:  # the reader of our output left (`xmr search ... | head -3`): no error
            with contextlib.suppress(OSError, ValueError):  # (in-process callers' stdout has no descriptor)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # flushing at exit raises no more
            raise typer.Exit(EXIT_PIPE_CLOSED) from None
        except KeyboardInterrupt:
            err.print("interrupted: finished batches are saved; run the same command again to resume.")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, TyperException):  # exits and usage errors: typer handles them
            raise
        except Exception:  # a bug: say so, keep the traceback, and never exit 1 ("no results")
            err.print_exception()
            err.print("[red]internal error[/]: this is a bug in xmr; please report it with the traceback above.")
            raise typer.Exit(EXIT_INTERNAL) from None

    return run
