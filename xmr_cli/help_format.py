"""How ``--help`` reads: values named by their metavar (``PATH...``, ``N``), never by a Python type.

typer prints each argument's annotation (``<list[Path]>``) beside its name; options print
their metavar instead. :func:`install` makes arguments do the same, so help reads like the
usage line. ``tests/test_cli.py`` checks every command's help for type names.
"""

from __future__ import annotations

import typer.core

__all__ = ["install"]


def _argument_type(self: typer.core.TyperArgument, ctx: object) -> str | None:
    return None  # the argument's name already is its metavar (e.g. PATH...)


def install() -> None:
    """Name arguments by their metavar alone in help (idempotent)."""
    # a patch on purpose; typer types the method with its private parameter class and vendored click
    typer.core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign, assignment]
