"""xmr command line: a thin typer layer over ``retrieval``.

This is the only module that prints or exits. Errors from the library are mapped to
messages and exit codes in one table (``_EXIT_CODES``). Heavy modules are imported
inside the commands so ``xmr --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

if TYPE_CHECKING:
    from retrieval import IndexReport, Library

app = typer.Typer(
    name="xmr",
    help="Cross-modal retrieval: index photo folders, search them by text or by image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

# Exit codes: 0 results, 1 no results, 2 bad input or unusable library/model, 70 internal
# error (a bug), 130 interrupted.
EXIT_NO_RESULTS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130

LibraryOpt = Annotated[
    Optional[Path],
    typer.Option("--library", "-L", envvar="XMR_LIBRARY", help="Library directory [default: $XDG_DATA_HOME/xmr/default]."),
]
CatalogOpt = Annotated[str, typer.Option("--catalog-url", help="SQLAlchemy URL of the catalog [default: SQLite in the library].")]
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="open_clip name, local-dir:PATH or a model folder [default: the library's model, else ViT-B-32]."),
]
PretrainedOpt = Annotated[
    Optional[str], typer.Option("--pretrained", help="Pretrained tag or weights file for --model [default: laion2b_s34b_b79k].")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
RerankerOpt = Annotated[str, typer.Option("--reranker", help="Rescore the top results: a folder from train-reranker, or blip:HUB_NAME.")]
DEFAULT_RERANK_K = 50  # == retrieval.rerank.base.DEFAULT_RERANK_K (not imported: --help stays light)
RerankKOpt = Annotated[int, typer.Option("--rerank-k", min=1, help="How many dual-encoder results the reranker rescores.")]


def _friendly_errors(command: Callable) -> Callable:
    """Turn the library's typed errors into one-line messages and exit codes."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        from index.errors import XmrError

        try:
            command(*args, **kwargs)
        except XmrError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
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


class _IndexProgress:
    """A rich progress bar with images/s, fed by the library's progress callback."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.bar = Progress(
            TextColumn("indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} img/s  {task.fields[failed]} failed"),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
        )
        self.task = self.bar.add_task("index", total=None, rate=0.0, failed=0)

    def start(self, to_read: int, unchanged: int) -> None:
        self.bar.update(self.task, total=to_read, visible=to_read > 0)
        if self.enabled and unchanged:
            err.print(f"{unchanged} files unchanged, {to_read} to read")

    def update(self, progress: object) -> None:
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0  # type: ignore[attr-defined]
        self.bar.update(self.task, completed=progress.done, rate=rate, failed=progress.failed)  # type: ignore[attr-defined]

    def __enter__(self) -> _IndexProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _open(library: Optional[Path], model: Optional[str], pretrained: Optional[str], catalog_url: str, device: str, create: bool, index_config: object = None) -> Library:
    from retrieval import Library

    return Library.open(library, model=model, pretrained=pretrained, catalog_url=catalog_url, device=device, create=create, index_config=index_config)  # type: ignore[arg-type]


def _index_config(kind: str, budget: str) -> object:
    """An IndexConfig from --index-kind/--memory-budget; None (the library's saved one) without either."""
    if not kind and not budget:
        return None
    from index.config import IndexConfig, parse_bytes

    try:
        return IndexConfig(kind=kind or "auto", memory_budget=parse_bytes(budget) if budget else 0)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
@_friendly_errors
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders or image files to index (recursively).")],
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    catalog_url: CatalogOpt = "",
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder batch.")] = 32,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Decoder threads (0: auto).")] = 0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Read files that failed before again.")] = False,
    index_kind: Annotated[str, typer.Option("--index-kind", help="auto, exact, ivf, sq8, ivfpq or ondisk; remembered by the library.")] = "",
    memory_budget: Annotated[str, typer.Option("--memory-budget", help="Memory the vector index may keep resident, e.g. 2GB; auto picks the kind that fits.")] = "",
    as_json: JsonOpt = False,
    cache_tokens: Annotated[bool, typer.Option("--cache-tokens", help="Keep each image's encoder tokens on disk so --reranker needs no decoding (remembered).")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Embed with Ray actors (a new local Ray, or $RAY_ADDRESS).")] = False,
    ray_address: Annotated[str, typer.Option("--ray-address", help="Ray cluster to use (auto, ray://HEAD:10001); implies --ray.")] = "",
    ray_gpus: Annotated[float, typer.Option("--ray-gpus", help="GPUs per Ray actor [default: 1 if the cluster has GPUs, else 0].")] = -1.0,
    ray_actors: Annotated[int, typer.Option("--ray-actors", min=0, help="Most Ray actors (0: one per GPU, else per CPU).")] = 0,
) -> None:
    """Index (or update) the images under PATHS: new, changed, moved and deleted files."""
    from retrieval import IngestConfig

    with _open(library, model, pretrained, catalog_url, device, create=True, index_config=_index_config(index_kind, memory_budget)) as lib:
        config = IngestConfig(batch_size=batch_size, workers=workers, retry_failed=retry_failed)
        on_ray = _ray_config(ray_address, ray_gpus, ray_actors) if ray or ray_address else None
        with _IndexProgress(enabled=not as_json) as bar:
            report = lib.index(paths, config=config, on_progress=bar.update, on_plan=bar.start, ray=on_ray, cache_tokens=cache_tokens)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_report(report)


def _ray_config(address: str, gpus: float, actors: int):  # noqa: ANN202
    from retrieval.distributed import RayConfig

    return RayConfig(address=address, gpus_per_actor=gpus if gpus >= 0 else -1.0, actors=actors)


def _print_report(report: IndexReport) -> None:
    err.print(
        f"added {report.added}, updated {report.updated}, moved {report.moved}, removed {report.removed}, "
        f"unchanged {report.unchanged}, failed {report.failed}  ({report.seconds:.1f} s)"
    )
    for path, why in report.failures[:20]:
        err.print(f"  [yellow]skipped[/] {escape(path)}: {escape(why)}", highlight=False)
    if len(report.failures) > 20:
        err.print(f"  ... and {len(report.failures) - 20} more (see  xmr failures)")


@app.command()
@_friendly_errors
def search(
    texts: Annotated[Optional[list[str]], typer.Argument(help="What to look for, in words (several add up).")] = None,
    image: Annotated[Optional[list[Path]], typer.Option("--image", "-i", help="Find images like this one (repeatable).")] = None,
    not_text: Annotated[Optional[list[str]], typer.Option("--not", help="Steer away from these words (repeatable).")] = None,
    not_image: Annotated[Optional[list[Path]], typer.Option("--not-image", help="Steer away from this image (repeatable).")] = None,
    weight: Annotated[Optional[list[str]], typer.Option("--weight", help="WEIGHT:TERM, e.g. 2:beach (repeatable).")] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Number of results.")] = 10,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many results (paging).")] = 0,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Drop results scoring below this.")] = None,
    under: Annotated[Optional[list[Path]], typer.Option("--under", help="Only images under this folder (repeatable).")] = None,
    after: Annotated[Optional[str], typer.Option("--after", help="Taken at or after this date (capture time, else mtime).")] = None,
    before: Annotated[Optional[str], typer.Option("--before", help="Taken before this date.")] = None,
    ext: Annotated[Optional[list[str]], typer.Option("--ext", help="Only these extensions, e.g. jpg,png (repeatable).")] = None,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per result line.")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Bare paths, one per line (for pipes).")] = False,
    in_texts: Annotated[bool, typer.Option("--texts", help="Rank the added texts instead of the images.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Show thumbnails (kitty, iTerm2, WezTerm terminals).")] = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
) -> None:
    """Rank the library's images (or, with --texts, its texts) by TEXTS and --image examples.

    With --reranker, the dual top --rerank-k are rescored and scores are match probabilities.

    Exit 1 when nothing matches.
    """
    from retrieval.query import build_filter, build_terms

    terms = build_terms(texts or [], [str(p) for p in image or []], not_text or [], [str(p) for p in not_image or []], weight or [])
    where = build_filter([str(p) for p in under or []], after, before, ext or [])
    if in_texts and where.active:
        raise typer.BadParameter("--under/--after/--before/--ext filter images; they do not apply with --texts")
    with _open(library, model, pretrained, "", device, create=False) as lib:
        rr = lib.load_reranker(reranker) if reranker else None
        if in_texts:
            query_image = image[0] if rr is not None and image and len(image) == 1 and not (texts or not_text or not_image or weight) else None
            if query_image is not None:  # image-to-text reranking takes the image itself
                text_hits = lib.search_texts(image=query_image, k=top, offset=offset, min_score=min_score, reranker=rr, rerank_k=rerank_k)
            else:
                text_hits = lib.search_texts(terms=terms, k=top, offset=offset, min_score=min_score, reranker=rr, rerank_k=rerank_k)
        else:
            hits = lib.search(terms=terms, k=top, where=where, offset=offset, min_score=min_score, reranker=rr, rerank_k=rerank_k)
    if in_texts:
        _print_text_hits(text_hits, as_json)
        if not text_hits:
            err.print("no results: no texts matched (add some with  xmr add-texts FILE).")
            raise typer.Exit(EXIT_NO_RESULTS)
        return
    if as_json:
        for hit in hits:
            typer.echo(json.dumps(hit.to_json()))
    elif paths_only:
        for hit in hits:
            typer.echo(hit.path)
    elif preview and _image_protocol():
        _print_previews(hits, _image_protocol())
    else:
        _print_hits(hits)
    if not hits:
        err.print("no results" + (": nothing passed the filters or --min-score." if where.active or min_score is not None or offset else ": the library has no indexed images (run  xmr index PATH)."))
        raise typer.Exit(EXIT_NO_RESULTS)


def _image_protocol() -> str:
    """"kitty" or "iterm2" when the terminal shows inline images, else "" (nothing breaks)."""
    import os

    if os.environ.get("KITTY_WINDOW_ID") or os.environ.get("TERM") == "xterm-kitty":
        return "kitty"
    if os.environ.get("TERM_PROGRAM") in {"iTerm.app", "WezTerm"} or os.environ.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return ""


def _inline_image(png: bytes, protocol: str) -> str:
    """The escape sequence that draws ``png`` at the cursor."""
    import base64

    data = base64.b64encode(png).decode("ascii")
    if protocol == "iterm2":
        return f"\x1b]1337;File=inline=1;size={len(png)};preserveAspectRatio=1:{data}\x07"
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]  # kitty: 4 KiB per chunk
    parts = [f"\x1b_Gf=100,a=T,m={int(i < len(chunks) - 1)};{c}\x1b\\" if i == 0 else f"\x1b_Gm={int(i < len(chunks) - 1)};{c}\x1b\\" for i, c in enumerate(chunks)]
    return "".join(parts)


def _print_previews(hits: list, protocol: str) -> None:
    from retrieval.decode import ImageDecodeError
    from retrieval.thumbnails import thumbnail_png

    for hit in hits:
        typer.echo(f"{hit.rank:>4}  {hit.score:.4f}  {hit.path}")
        try:
            typer.echo(_inline_image(thumbnail_png(hit.path), protocol))
        except ImageDecodeError as exc:
            typer.echo(f"      (no preview: {exc})")


def _print_text_hits(hits: list, as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if as_json:
        for hit in hits:
            typer.echo(json.dumps(hit.to_json()))
        return
    table = Table(box=None, highlight=False)
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold")
    for hit in hits:
        table.add_row(str(hit.rank), f"{hit.score:.4f}", Text(hit.text))
    out.print(table)


@app.command(name="add-texts")
@_friendly_errors
def add_texts(
    files: Annotated[list[Path], typer.Argument(help=".txt (one text per line), pairs .jsonl, or .csv with a text column.")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed texts into the library's text corpus (for image-to-text search). Re-adding adds nothing twice."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        for path in files:
            report = lib.add_texts(path)
            if as_json:
                typer.echo(json.dumps(report.to_json()))
            else:
                err.print(f"{escape(report.source)}: added {report.added}, already there {report.skipped}", highlight=False)


@app.command(name="remove-texts")
@_friendly_errors
def remove_texts(
    sources: Annotated[list[Path], typer.Argument(help="Files whose texts to remove (as given to add-texts).")],
    library: LibraryOpt = None,
) -> None:
    """Remove the texts that were added from SOURCES."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        for source in sources:
            removed = lib.remove_texts(source)
            err.print(f"{escape(str(source))}: removed {removed}", highlight=False)


def _print_hits(hits: list) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, highlight=False)
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("path", overflow="fold")  # a path is for copying: wrap it, never cut it
    for hit in hits:
        table.add_row(str(hit.rank), f"{hit.score:.4f}", Text(hit.path))
    out.print(table)


@app.command()
@_friendly_errors
def info(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Counts, model, index kind, dimensions and size on disk of the library."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        details = lib.info()
    if as_json:
        typer.echo(json.dumps(details.to_json()))
        return
    for key, value in details.to_json().items():
        out.print(f"{key:>14}  {escape(str(value))}", highlight=False)


@app.command()
@_friendly_errors
def failures(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """List the files that could not be indexed, with the reason."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        rows = lib.failures()
    for path, why in rows:
        line = json.dumps({"path": path, "error": why}) if as_json else f"{path}\t{why}"
        typer.echo(line)


@app.command()
@_friendly_errors
def serve(
    library: LibraryOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8765,
    token: Annotated[str, typer.Option("--token", envvar="XMR_TOKEN", help="Secret every request must carry (Bearer header, ?token= or cookie).")] = "",
    reranker: Annotated[str, typer.Option("--reranker", help="Reranker to load for requests that ask for rerank.")] = "",
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest uploaded query image.")] = 20.0,
    device: DeviceOpt = "auto",
) -> None:
    """Serve the library over HTTP: a JSON API (docs at /docs) and a search page at /."""
    from retrieval.serve import ServeConfig, check_bind, require_serve, run_server

    check_bind(host, token)  # before the model loads: a refusal should be instant
    require_serve()
    config = ServeConfig(host=host, port=port, token=token, reranker=reranker, max_upload_bytes=int(max_upload_mb * 2**20))
    with _open(library, None, None, "", device, create=False) as lib:
        err.print(f"serving {escape(str(lib.layout.root))} at http://{escape(host)}:{port}/  (Ctrl-C stops)", highlight=False)
        run_server(lib, config)


@app.command()
@_friendly_errors
def train(
    pairs: Annotated[Path, typer.Argument(help="Pairs folder (pairs.jsonl + images) or a Karpathy split JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (an open_clip local-dir).")],
    arch: Annotated[str, typer.Option("--arch", help="Architecture to train from scratch: a shipped name, an open_clip name or a config .json.")] = "xmr-shapes-s",
    init: Annotated[str, typer.Option("--init", help="Fine-tune this model (any --model value) instead.")] = "",
    init_pretrained: Annotated[str, typer.Option("--init-pretrained", help="--pretrained going with --init.")] = "",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Total steps (overrides --epochs).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 1e-3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Warm-up steps.")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    hard_negatives: Annotated[bool, typer.Option("--hard-negatives/--no-hard-negatives", help="Use each line's negatives in the loss.")] = True,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Translations and caption-mirroring flips.")] = True,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to train on.")] = "train",
) -> None:
    """Train a dual encoder contrastively on PAIRS into --out (resumes an interrupted run)."""
    from retrieval.train import TrainConfig, train as run_training

    config = TrainConfig(arch=arch, init=init, init_pretrained=init_pretrained, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup, seed=seed, hard_negatives=hard_negatives, augment=augment)
    with _TrainProgress() as bar:
        folder = run_training(pairs, out, config, on_progress=bar.update, split=split)
    err.print(f"model written to {escape(str(folder))}; use it with  --model {escape(str(folder))}", highlight=False)


class _TrainProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s  T {task.fields[temp]:.3f}"), TimeRemainingColumn(), console=err)
        self.task = self.bar.add_task("train", total=None, loss=0.0, rate=0.0, temp=0.0)

    def update(self, progress: object) -> None:
        p = progress
        self.bar.start()  # on the first step, so a run that fails to start draws no bar
        self.bar.update(self.task, completed=p.step, total=p.total, loss=p.loss, rate=p.pairs_per_second, temp=p.temperature)  # type: ignore[attr-defined]

    def __enter__(self) -> _TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


@app.command(name="eval")
@_friendly_errors
def evaluate(
    pairs: Annotated[Path, typer.Argument(help="Pairs folder (pairs.jsonl + images), pairs.jsonl, or a Karpathy split JSON.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to evaluate (any --model value).")],
    pretrained: PretrainedOpt = None,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to read.")] = "test",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root folder of the Karpathy images.")] = None,
    groups: Annotated[Optional[str], typer.Option("--groups", help="Also report per caption group: shapes-world.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
) -> None:
    """Recall@1/5/10 both ways and binding (when lines carry negatives) of a model on PAIRS.

    With --reranker, each query's dual top --rerank-k is rescored first (same metrics)."""
    from retrieval.encoder import load_encoder
    from retrieval.evaluate import GROUPINGS, evaluate as run_eval
    from retrieval.models import ModelSpec
    from retrieval.pairs import load_pairs

    if groups is not None and groups not in GROUPINGS:
        raise typer.BadParameter(f"--groups must be one of {', '.join(GROUPINGS)}")
    pair_set = load_pairs(pairs, split=split, images_root=images)
    encoder = load_encoder(ModelSpec(model, pretrained or ""), device)
    if reranker:
        from retrieval.rerank.evaluate import evaluate_reranked

        result = evaluate_reranked(pair_set, encoder, reranker, rerank_k, groups, device)
    else:
        result = run_eval(pair_set, encoder, groups)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_metrics(result)


@app.command(name="train-reranker")
@_friendly_errors
def train_reranker(
    pairs: Annotated[Path, typer.Argument(help="Pairs folder (pairs.jsonl + images; negatives used when present) or a Karpathy split JSON.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The library's encoder (any --model value); it stays frozen.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Reranker folder to write.")],
    pretrained: PretrainedOpt = None,
    fusion: Annotated[str, typer.Option("--fusion", help="Fusion head: cross-attention, attention-pool, single-stream, bilinear or concat.")] = "cross-attention",
    steps: Annotated[int, typer.Option("--steps", min=1)] = 600,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Caption lines per step.")] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 1e-3,
    width: Annotated[int, typer.Option("--width", min=0, help="Channels inside the head (0: the encoder's embedding size).")] = 64,
    layers: Annotated[int, typer.Option("--layers", min=1, help="Fusion layers (hops).")] = 2,
    pool: Annotated[int, typer.Option("--pool", min=1, help="Average-pool the image patch grid by this factor first.")] = 2,
    align: Annotated[bool, typer.Option("--align-init/--no-align-init", help="Start the head from the encoder's output projections (width 0).")] = False,
    mirror: Annotated[bool, typer.Option("--mirror/--no-mirror", help="Mirror half the lines: token grid columns and left/right in captions.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to train on.")] = "train",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root folder of the Karpathy images.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Train a reranker over MODEL's frozen token features on PAIRS into --out (resumes)."""
    from retrieval.encoder import load_encoder
    from retrieval.models import ModelSpec
    from retrieval.rerank.heads import list_heads
    from retrieval.rerank.train import RerankTrainConfig, train_reranker as run_training

    if fusion not in list_heads():
        raise typer.BadParameter(f"--fusion must be one of {', '.join(list_heads())}")
    encoder = load_encoder(ModelSpec(model, pretrained or ""), device)
    config = RerankTrainConfig(fusion=fusion, steps=steps, batch_size=batch_size, lr=lr, width=width, layers=layers, pool=pool, align_init=align, mirror=mirror, seed=seed)
    with _RerankProgress() as bar:
        folder = run_training(pairs, encoder, out, config, on_progress=bar.update, split=split, images_root=images)
    err.print(f"reranker written to {escape(str(folder))}; use it with  --reranker {escape(str(folder))}", highlight=False)


class _RerankProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s"), TimeRemainingColumn(), console=err)
        self.task = self.bar.add_task("rerank", total=None, phase="", loss=0.0, rate=0.0)

    def update(self, p: object) -> None:
        self.bar.start()
        self.bar.update(self.task, completed=p.done, total=p.total, phase=p.phase, loss=p.loss, rate=p.pairs_per_second)  # type: ignore[attr-defined]

    def __enter__(self) -> _RerankProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _print_metrics(result: dict) -> None:
    from rich.table import Table

    table = Table("set", "captions", "t2i R@1", "R@5", "R@10", "i2t R@1", "R@5", "R@10", "binding", box=None)
    rows = [("all", result), *result.get("groups", {}).items()]
    for name, r in rows:
        binding = f"{r['binding']:.3f}" if "binding" in r else "-"
        table.add_row(name, str(r["count"]), *(f"{r['t2i'][k]:.3f}" for k in ("R@1", "R@5", "R@10")), *(f"{r['i2t'][k]:.3f}" for k in ("R@1", "R@5", "R@10")), binding)
    out.print(table)
    if "binding_by_negative" in result:
        wins = ", ".join(f"{kind} {share:.3f}" for kind, share in result["binding_by_negative"].items())
        out.print(f"caption beats its negative, by kind of negative: {wins}")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
