"""What the commands print: results on stdout (a table, JSON lines, bare paths), messages on stderr.

Paths and texts go through ``Text`` or ``escape`` so brackets in them are never read as markup,
and through :func:`xmr_cli.escape.shown` so a name never moves the cursor or splits a line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from xmr_cli.escape import human_bytes, shown

if TYPE_CHECKING:
    from retrieval import DuplicateReport, Hit, IndexReport, LibraryInfo, TextHit, TextReport

__all__ = [
    "check_output_options",
    "clock",
    "err",
    "image_protocol",
    "inline_image",
    "out",
    "print_duplicates",
    "print_failures",
    "print_hits",
    "print_info",
    "print_metrics",
    "print_no_results",
    "print_removed",
    "print_report",
    "print_serving",
    "print_text_hits",
    "print_text_report",
    "print_version",
    "print_watch_batch",
    "print_watching",
    "print_written",
    "preview_note",
    "safe",
    "write_nul_terminated",
]

RAW_EXTRA = "'xmr[raw]'"
out = Console()
err = Console(stderr=True, soft_wrap=True)  # messages are never broken mid-path; the terminal wraps them


def print_version() -> None:
    """``xmr X.Y.Z`` and the Python running it."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("xmr")
    except PackageNotFoundError:  # run from a checkout that was never installed
        mine = "unknown (not installed)"
    typer.echo(f"xmr {mine} (Python {platform.python_version()})")


def print_report(report: IndexReport, as_json: bool, discarded: bool = False) -> None:
    """An index run's counts (JSON on stdout, or a summary, the first failures and the kinds of
    files not read, on stderr); ``discarded``: the run found nothing and made no library."""
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "library_made": not discarded}))
        return
    err.print(
        f"added {report.added}, updated {report.updated}, moved {report.moved}, removed {report.removed}, "
        f"unchanged {report.unchanged}, failed {report.failed}  ({report.seconds:.1f} s)"
    )
    if report.videos:
        err.print(f"videos read {report.videos}, moments written {report.moments}")
    for path, why in report.failures[:20]:
        err.print(f"  [yellow]skipped[/] {safe(path)}: {safe(why)}", highlight=False)
    if len(report.failures) > 20:
        err.print(f"  ... and {len(report.failures) - 20} more (see  xmr failures)")
    for kind in report.not_read:
        more = f" and {kind.count - len(kind.examples)} more" if kind.count > len(kind.examples) else ""
        examples = ", ".join(safe(path) for path in kind.examples)
        err.print(
            f"  [yellow]not read[/]: {kind.count} {safe(kind.kind)} ({examples}{more}); {safe(kind.hint)}",
            highlight=False,
        )
    if report.skipped:  # one line for all of them: the fix is the same
        count = len(report.skipped)
        err.print(
            f"[yellow]not read[/] {count} video{'s' if count > 1 else ''}: {safe(report.skipped_reason)}",
            highlight=False,
        )
        for path in report.skipped[:20]:
            err.print(f"  {safe(path)}", highlight=False)
        if count > 20:
            err.print(f"  ... and {count - 20} more")
    _print_left_out(report)
    if discarded:
        err.print("no image files were found, so no library was made.")


def _print_left_out(report: IndexReport) -> None:
    """What the walk left out on purpose: excluded, links not walked, RAW files it cannot read."""
    if report.excluded:
        err.print(f"left out {report.excluded} files and folders by exclusion rules (defaults, --exclude, .xmrignore)")
    _print_some("removed, now excluded:", report.excluded_removed)
    _print_some("symbolic links to folders not walked:", [f"{shown(p)}: {why}" for p, why in report.links_skipped])
    if report.raw_skipped:
        err.print(f"{len(report.raw_skipped)} RAW files not indexed: pip install {escape(RAW_EXTRA)} to read them")
        _print_some("", report.raw_skipped)
    if report.rehashed:
        err.print(f"read {report.rehashed} unchanged files again to add their perceptual hash (nothing re-embedded)")


def _print_some(title: str, lines: Sequence[str], limit: int = 10) -> None:
    if not lines:
        return
    if title:
        err.print(title)
    for line in lines[:limit]:
        err.print(f"  {safe(line)}", highlight=False, soft_wrap=True)  # a path is for copying: never cut
    if len(lines) > limit:
        err.print(f"  ... and {len(lines) - limit} more (--json lists them all)")


def safe(text: str) -> str:
    """``text`` for a rich message line: control characters quoted (:func:`shown`), markup escaped."""
    return escape(shown(text))


def print_hits(
    hits: Sequence[Hit], as_json: bool = False, paths_only: bool = False, preview: bool = False, print0: bool = False
) -> None:
    """Image hits as JSON lines, bare paths (one a line, or NUL-terminated with ``print0``),
    inline thumbnails (where the terminal draws them) or a table."""
    protocol = image_protocol() if preview else ""
    if as_json:
        _print_json_lines(hits)
    elif print0:
        write_nul_terminated([hit.path for hit in hits])
    elif paths_only:
        for hit in hits:
            typer.echo(shown(hit.path))
    elif protocol:
        _print_previews(hits, protocol)
    else:  # a path is for copying: wrap it, never cut it
        _print_ranked(
            hits, "path", [hit.path if hit.start is None else f"{hit.path} @ {clock(hit.start)}" for hit in hits]
        )


def clock(seconds: float) -> str:
    """``seconds`` as H:MM:SS (a moment's place in its video)."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def check_output_options(*, as_json: bool, paths_only: bool, print0: bool, preview: bool, in_texts: bool) -> None:
    """Refuse output options that would be ignored: each search prints one way.

    Raises:
        typer.BadParameter: two outputs at once, or one that does not apply to --texts.
    """
    chosen = [name for name, on in (("--json", as_json), ("--paths", paths_only), ("--print0", print0)) if on]
    if len(chosen) > 1 and chosen != ["--paths", "--print0"]:  # --print0 is --paths ended by NUL
        raise typer.BadParameter(f"{' and '.join(chosen)} are different outputs; give one of them.")
    if preview and chosen:
        raise typer.BadParameter(f"--preview draws thumbnails next to the table; it does not apply with {chosen[0]}.")
    if in_texts and (paths_only or print0 or preview):
        option = "--paths" if paths_only else "--print0" if print0 else "--preview"
        raise typer.BadParameter(f"{option} lists image files; --texts ranks texts (use the table or --json).")


def write_nul_terminated(names: Sequence[str]) -> None:
    """Each name exactly as the file system has it, followed by NUL (for ``xargs -0``)."""
    import sys

    stream = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    data = b"".join(name.encode("utf-8", "surrogateescape") + b"\0" for name in names)
    if stream is None:  # a text-only stdout (some test runners): the same characters
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))
    else:
        stream.write(data)
    sys.stdout.flush()


def preview_note() -> str:
    """Why ``--preview`` shows the table on this terminal ("" when it draws thumbnails)."""
    if image_protocol():
        return ""
    return "--preview: this terminal cannot show images (kitty, iTerm2 and WezTerm can); showing the table."


def print_text_hits(hits: Sequence[TextHit], as_json: bool) -> None:
    """Text hits as JSON lines or a table."""
    if as_json:
        _print_json_lines(hits)
    else:
        _print_ranked(hits, "text", [hit.text for hit in hits])


def print_no_results(in_texts: bool, why: str = "") -> None:
    """Why a search found nothing (``why``: the library's own explanation), and what to do about it."""
    if in_texts:
        err.print("no results: no texts matched (add some with  xmr add-texts FILE).")
    else:
        err.print(f"no results: {safe(why or 'nothing matched.')}", highlight=False)


def image_protocol() -> str:
    """ "kitty" or "iterm2" when the terminal shows inline images, else "" (nothing breaks)."""
    import os

    if os.environ.get("KITTY_WINDOW_ID") or os.environ.get("TERM") == "xterm-kitty":
        return "kitty"
    if os.environ.get("TERM_PROGRAM") in {"iTerm.app", "WezTerm"} or os.environ.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return ""


def inline_image(png: bytes, protocol: str) -> str:
    """The escape sequence that draws ``png`` at the cursor."""
    import base64

    data = base64.b64encode(png).decode("ascii")
    if protocol == "iterm2":
        return f"\x1b]1337;File=inline=1;size={len(png)};preserveAspectRatio=1:{data}\x07"
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]  # kitty: 4 KiB per chunk
    parts = [
        f"\x1b_Gf=100,a=T,m={int(i < len(chunks) - 1)};{c}\x1b\\"
        if i == 0
        else f"\x1b_Gm={int(i < len(chunks) - 1)};{c}\x1b\\"
        for i, c in enumerate(chunks)
    ]
    return "".join(parts)


def _print_previews(hits: Sequence[Hit], protocol: str) -> None:
    from index.errors import MissingDependencyError
    from retrieval.errors import ImageDecodeError, VideoDecodeError
    from retrieval.images.thumbnails import thumbnail_png
    from retrieval.video.thumbnails import frame_png

    for hit in hits:
        at = "" if hit.start is None else f" @ {clock(hit.start)}"
        typer.echo(f"{hit.rank:>4}  {hit.score:.4f}  {shown(hit.path)}{at}")
        try:
            png = thumbnail_png(hit.path) if hit.start is None else frame_png(hit.path, hit.start)
            typer.echo(inline_image(png, protocol))
        except (ImageDecodeError, VideoDecodeError, MissingDependencyError) as exc:
            typer.echo(f"      (no preview: {exc})")


def _print_json_lines(hits: Sequence[Hit] | Sequence[TextHit]) -> None:
    for hit in hits:
        typer.echo(json.dumps(hit.to_json()))


def _print_ranked(hits: Sequence[Hit | TextHit], column: str, values: list[str]) -> None:
    """A rank, score and ``column`` table. On a terminal ``values`` fold onto more lines rather
    than being cut; into a pipe or file each row is one line of any length (never wrapped)."""
    if not out.is_terminal:
        typer.echo(f"{'rank':>4}  {'score':>7}  {column}")
        for hit, value in zip(hits, values):
            typer.echo(f"{hit.rank:>4}  {hit.score:>7.4f}  {shown(value)}")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, highlight=False)
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column(column, overflow="fold")
    for hit, value in zip(hits, values):
        table.add_row(str(hit.rank), f"{hit.score:.4f}", Text(shown(value)))
    out.print(table)


def print_text_report(report: TextReport, as_json: bool) -> None:
    """What add-texts added from one file."""
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        err.print(f"{safe(report.source)}: added {report.added}, already there {report.skipped}", highlight=False)


def print_removed(source: Path, removed: int) -> None:
    """How many texts remove-texts removed from one file."""
    err.print(f"{safe(str(source))}: removed {removed}", highlight=False)


# Fields of LibraryInfo that count bytes: shown as kB, MB, GB (raw numbers stay in --json).
_BYTE_FIELDS = frozenset({"bytes_on_disk", "index_memory"})


def print_info(details: LibraryInfo, as_json: bool) -> None:
    """The library's counts, model and index, as JSON (raw numbers) or one aligned line per field."""
    if as_json:
        typer.echo(json.dumps(details.to_json()))
        return
    for key, value in details.to_json().items():
        if key in _BYTE_FIELDS and isinstance(value, (int, float)):
            text = human_bytes(value)
        elif key == "bytes_per_vec" and isinstance(value, (int, float)):
            text = f"{value:g} B"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        out.print(f"{key:>14}  {safe(text)}", highlight=False)


def print_failures(rows: Sequence[tuple[str, str]], as_json: bool, print0: bool = False) -> None:
    """Files that could not be indexed: JSON lines, NUL-terminated paths, or ``path<TAB>reason``
    lines (names quoted where they hold control characters); "no failures" on stderr when none."""
    if print0:
        write_nul_terminated([path for path, _ in rows])
        return
    for path, why in rows:
        line = json.dumps({"path": path, "error": why}) if as_json else f"{shown(path)}\t{shown(why)}"
        typer.echo(line)
    if not rows and not as_json:
        err.print("no failures: every file found was read.")


def print_serving(root: Path, host: str, port: int) -> None:
    """The address the server listens on."""
    err.print(f"serving {safe(str(root))} at http://{escape(host)}:{port}/  (Ctrl-C stops)", highlight=False)


def print_written(what: str, folder: Path, option: str) -> None:
    """Where a training run wrote ``what``, and the option that uses it."""
    err.print(f"{what} written to {safe(str(folder))}; use it with  {option} {safe(str(folder))}", highlight=False)


def print_metrics(result: dict, as_json: bool) -> None:
    """Recall both ways and binding, overall and per caption group: JSON or a table."""
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.table import Table

    table = Table("set", "captions", "t2i R@1", "R@5", "R@10", "i2t R@1", "R@5", "R@10", "binding", box=None)
    rows = [("all", result), *result.get("groups", {}).items()]
    for name, r in rows:
        binding = f"{r['binding']:.3f}" if "binding" in r else "-"
        table.add_row(
            name,
            str(r["count"]),
            *(f"{r['t2i'][k]:.3f}" for k in ("R@1", "R@5", "R@10")),
            *(f"{r['i2t'][k]:.3f}" for k in ("R@1", "R@5", "R@10")),
            binding,
        )
    out.print(table)
    if any("binding" in r for _, r in rows):
        out.print(
            "binding: how often a caption scores higher for its image than every one of its negatives "
            "(the same words with colours, shapes or relations swapped); 1.0: never fooled by a swap.",
            highlight=False,
        )
    if "binding_by_negative" in result:
        wins = ", ".join(f"{kind} {share:.3f}" for kind, share in result["binding_by_negative"].items())
        out.print(f"caption beats its negative, by kind of negative: {wins}")


def print_duplicates(report: DuplicateReport, as_json: bool) -> None:
    """Duplicate groups (JSON lines, or a block per group on stdout) and a summary on stderr."""
    from rich.table import Table
    from rich.text import Text

    from index.config import format_bytes

    for group in report.groups:
        if as_json:
            typer.echo(json.dumps(group.to_json()))
            continue
        out.print(f"[bold]{group.tier}[/]  {len(group.members)} files; keep {safe(group.keeper.path)}", highlight=False)
        out.print(f"  why: {safe(group.reason)}", highlight=False)
        table = Table(box=None, highlight=False, show_header=False, padding=(0, 1, 0, 2))
        for column in ("relation", "score", "bits", "size", "path"):
            table.add_column(column, overflow="fold" if column == "path" else "ellipsis")
        for m in group.members:
            bits = "-" if m.bits is None else str(m.bits)
            table.add_row(m.relation, f"{m.score:.3f}", bits, f"{m.width}x{m.height}", Text(shown(m.path)))
        out.print(table)
    spare = [m for g in report.groups for m in g.members[1:]]
    tiers = ", ".join(f"{sum(g.tier == t for g in report.groups)} {t}" for t in ("exact", "near", "similar"))
    err.print(
        f"{len(report.groups)} groups ({tiers}) among {report.images} images; the {len(spare)} files besides "
        f"the keepers take {format_bytes(sum(m.size for m in spare))}  ({report.seconds:.1f} s). Nothing was changed."
    )
    if report.without_hash:
        err.print(
            f"{report.without_hash} images have no perceptual hash yet (indexed by an older xmr), so they are "
            "not found as near copies; run  xmr index  on their folders once to add it (nothing is re-embedded)."
        )


def print_watching(paths: Sequence[Path]) -> None:
    """That a watch starts, on what."""
    names = ", ".join(safe(str(p)) for p in paths)
    err.print(
        f"watching {names}: catching up first, then indexing changes as they settle (Ctrl-C stops)", highlight=False
    )


def print_watch_batch(report: IndexReport, roots: Sequence[str], as_json: bool) -> None:
    """One committed batch of a watch (the catch-up run has no ``roots``)."""
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "paths": list(roots)}))
        return
    import time

    what = "caught up" if not roots else f"{len(roots)} changed path{'s' * (len(roots) > 1)}"
    err.print(
        f"{time.strftime('%H:%M:%S')}  {what}: added {report.added}, updated {report.updated}, moved {report.moved}, "
        f"removed {report.removed}, failed {report.failed}  ({report.seconds:.1f} s)"
    )
    for path, why in report.failures[:5]:
        err.print(f"  [yellow]skipped[/] {safe(path)}: {safe(why)}", highlight=False)
    _print_left_out(report)
