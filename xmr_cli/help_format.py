"""How ``--help`` reads: values named by their metavar (``PATH...``, ``N``), never by a Python type.

:func:`install` writes an argument in the usage line as click does: ``PATH...`` for a
required list, ``[WORDS]...`` for an optional one (typer 0.28 writes ``{PATH}`` and
``[WORDS]``, hiding that several may be given). ``tests/xmr_cli/test_conventions.py``
checks every command's help for type names and the usage lines.
"""

from __future__ import annotations

import typer.core

__all__ = ["install"]


def _argument_metavar(self: typer.core.TyperArgument, ctx: object, *, usage: bool = False) -> str:
    name = self.metavar or (self.name or "").upper()
    if not usage:
        return name
    shown = name if self.required else f"[{name}]"
    return f"{shown}..." if self.nargs != 1 else shown


def install() -> None:
    """Write arguments click's way in the usage line (idempotent)."""
    # a patch on purpose; typer types the method with its vendored click's context
    typer.core.TyperArgument.make_metavar = _argument_metavar  # type: ignore[method-assign]
