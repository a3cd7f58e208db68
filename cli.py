"""xmr command line: a thin typer layer over ``retrieval``, one function per command.

This module is the ``xmr`` entry point. It and the helpers in ``xmr_cli/`` (shared options,
output, progress bars, the error table) are the only code that prints or exits; errors
from the library become messages and exit codes in one place (:func:`xmr_cli.errors.friendly_errors`).
Heavy modules are imported inside the commands so ``xmr --help`` stays fast and never
imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from xmr_cli.errors import EXIT_NO_RESULTS, friendly_errors
from xmr_cli.options import (
    DEFAULT_RERANK_K,
    CatalogOpt,
    DeviceOpt,
    JsonOpt,
    LibraryOpt,
    ModelOpt,
    PretrainedOpt,
    RerankerOpt,
    RerankKOpt,
    make_index_config,
    make_ray_config,
)
from xmr_cli.output import (
    print_failures,
    print_hits,
    print_info,
    print_metrics,
    print_no_results,
    print_removed,
    print_report,
    print_serving,
    print_text_hits,
    print_text_report,
    print_written,
)
from xmr_cli.progress import IndexProgress, RerankProgress, TrainProgress, working

if TYPE_CHECKING:
    from retrieval import IndexConfig, Library

__all__ = ["app", "main"]

app = typer.Typer(
    name="xmr",
    help="Cross-modal retrieval: index photo folders, search them by text or by image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _open(
    library: Optional[Path],
    model: Optional[str],
    pretrained: Optional[str],
    catalog_url: str,
    device: str,
    create: bool,
    index_config: IndexConfig | None = None,
) -> Library:
    from retrieval import Library

    return Library.open(
        library,
        model=model,
        pretrained=pretrained,
        catalog_url=catalog_url,
        device=device,
        create=create,
        index_config=index_config,
    )


@app.command()
@friendly_errors
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
    index_kind: Annotated[
        str, typer.Option("--index-kind", help="auto, exact, ivf, sq8, ivfpq or ondisk; remembered by the library.")
    ] = "",
    memory_budget: Annotated[
        str,
        typer.Option(
            "--memory-budget",
            help="Memory the vector index may keep resident, e.g. 2GB; auto picks the kind that fits.",
        ),
    ] = "",
    as_json: JsonOpt = False,
    cache_tokens: Annotated[
        bool,
        typer.Option(
            "--cache-tokens",
            help="Keep each image's encoder tokens on disk so --reranker needs no decoding (remembered).",
        ),
    ] = False,
    ray: Annotated[
        bool, typer.Option("--ray", help="Embed with Ray actors (a new local Ray, or $RAY_ADDRESS).")
    ] = False,
    ray_address: Annotated[
        str, typer.Option("--ray-address", help="Ray cluster to use (auto, ray://HEAD:10001); implies --ray.")
    ] = "",
    ray_gpus: Annotated[
        float, typer.Option("--ray-gpus", help="GPUs per Ray actor [default: 1 if the cluster has GPUs, else 0].")
    ] = -1.0,
    ray_actors: Annotated[
        int, typer.Option("--ray-actors", min=0, help="Most Ray actors (0: one per GPU, else per CPU).")
    ] = 0,
    video_interval: Annotated[
        float,
        typer.Option(
            "--video-interval", min=0.1, help="Seconds between frames sampled from a video (plus scene cuts)."
        ),
    ] = 2.0,
) -> None:
    """Index (or update) the photos and videos under PATHS: new, changed, moved and deleted files."""
    from retrieval import IngestConfig, SampleConfig

    with _open(
        library,
        model,
        pretrained,
        catalog_url,
        device,
        create=True,
        index_config=make_index_config(index_kind, memory_budget),
    ) as lib:
        video = SampleConfig(interval=video_interval)
        config = IngestConfig(batch_size=batch_size, workers=workers, retry_failed=retry_failed, video=video)
        on_ray = make_ray_config(ray_address, ray_gpus, ray_actors) if ray or ray_address else None
        with IndexProgress(enabled=not as_json) as bar:
            report = lib.index(
                paths, config=config, on_progress=bar.update, on_plan=bar.start, ray=on_ray, cache_tokens=cache_tokens
            )
    print_report(report, as_json)


@app.command()
@friendly_errors
def search(
    texts: Annotated[Optional[list[str]], typer.Argument(help="What to look for, in words (several add up).")] = None,
    image: Annotated[
        Optional[list[Path]], typer.Option("--image", "-i", help="Find images like this one (repeatable).")
    ] = None,
    not_text: Annotated[
        Optional[list[str]], typer.Option("--not", help="Steer away from these words (repeatable).")
    ] = None,
    not_image: Annotated[
        Optional[list[Path]], typer.Option("--not-image", help="Steer away from this image (repeatable).")
    ] = None,
    weight: Annotated[
        Optional[list[str]], typer.Option("--weight", help="WEIGHT:TERM, e.g. 2:beach (repeatable).")
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Number of results.")] = 10,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many results (paging).")] = 0,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Drop results scoring below this.")] = None,
    under: Annotated[
        Optional[list[Path]], typer.Option("--under", help="Only images under this folder (repeatable).")
    ] = None,
    after: Annotated[
        Optional[str], typer.Option("--after", help="Taken at or after this date (capture time, else mtime).")
    ] = None,
    before: Annotated[Optional[str], typer.Option("--before", help="Taken before this date.")] = None,
    ext: Annotated[
        Optional[list[str]], typer.Option("--ext", help="Only these extensions, e.g. jpg,png (repeatable).")
    ] = None,
    media: Annotated[str, typer.Option("--media", help="photos, videos or all.")] = "all",
    each_moment: Annotated[
        bool, typer.Option("--each-moment", help="List every matching moment of a video, not one hit per video.")
    ] = False,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per result line.")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Bare paths, one per line (for pipes).")] = False,
    in_texts: Annotated[bool, typer.Option("--texts", help="Rank the added texts instead of the images.")] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Show thumbnails (kitty, iTerm2, WezTerm terminals).")
    ] = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
) -> None:
    """Rank the library's photos and videos (or, with --texts, its texts) by TEXTS and --image examples.

    A video is one hit at its best matching moment (path @ 0:01:23); --json adds start and end seconds.

    With --reranker, the dual top --rerank-k are rescored and scores are match probabilities.

    Exit 1 when nothing matches.
    """
    from retrieval.search.query import build_filter, build_terms, check_min_score

    terms = build_terms(
        texts or [], [str(p) for p in image or []], not_text or [], [str(p) for p in not_image or []], weight or []
    )
    where = build_filter([str(p) for p in under or []], after, before, ext or [], media)
    check_min_score(min_score)
    if in_texts and where.active:
        raise typer.BadParameter("--under/--after/--before/--ext/--media filter images; they do not apply with --texts")
    with _open(library, model, pretrained, "", device, create=False) as lib, working("searching"):
        rr = lib.load_reranker(reranker) if reranker else None
        if in_texts:
            lone = _lone_image(image, texts, not_text, not_image, weight) if rr is not None else None
            hits = lib.search_texts(
                image=lone,
                terms=terms if lone is None else (),
                k=top,
                offset=offset,
                min_score=min_score,
                reranker=rr,
                rerank_k=rerank_k,
            )
        else:
            hits = lib.search(
                terms=terms,
                k=top,
                where=where,
                offset=offset,
                min_score=min_score,
                reranker=rr,
                rerank_k=rerank_k,
                per_video=not each_moment,
            )
    if in_texts:
        print_text_hits(hits, as_json)  # type: ignore[arg-type]
    else:
        print_hits(hits, as_json=as_json, paths_only=paths_only, preview=preview)  # type: ignore[arg-type]
    if not hits:
        print_no_results(in_texts, filtered=bool(where.active or min_score is not None or offset))
        raise typer.Exit(EXIT_NO_RESULTS)


def _lone_image(image: Optional[list[Path]], *others: Optional[list]) -> Optional[Path]:
    """The query's one --image when it has nothing else: image-to-text reranking takes the image itself."""
    return image[0] if image and len(image) == 1 and not any(others) else None


@app.command(name="add-texts")
@friendly_errors
def add_texts(
    files: Annotated[
        list[Path], typer.Argument(help=".txt (one text per line), pairs .jsonl, or .csv with a text column.")
    ],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed texts into the library's text corpus (for image-to-text search). Re-adding adds nothing twice."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        for path in files:
            print_text_report(lib.add_texts(path), as_json)


@app.command(name="remove-texts")
@friendly_errors
def remove_texts(
    sources: Annotated[list[Path], typer.Argument(help="Files whose texts to remove (as given to add-texts).")],
    library: LibraryOpt = None,
) -> None:
    """Remove the texts that were added from SOURCES."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        for source in sources:
            print_removed(source, lib.remove_texts(source))


@app.command()
@friendly_errors
def info(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Counts, model, index kind, dimensions and size on disk of the library."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        details = lib.info()
    print_info(details, as_json)


@app.command()
@friendly_errors
def failures(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """List the files that could not be indexed, with the reason."""
    with _open(library, None, None, "", "auto", create=False) as lib:
        rows = lib.failures()
    print_failures(rows, as_json)


@app.command()
@friendly_errors
def serve(
    library: LibraryOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8765,
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="XMR_TOKEN", help="Secret every request must carry (Bearer header, ?token= or cookie)."
        ),
    ] = "",
    reranker: Annotated[
        str, typer.Option("--reranker", help="Reranker to load for requests that ask for rerank.")
    ] = "",
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.01, help="Largest uploaded query image.")
    ] = 20.0,
    allow_host: Annotated[
        Optional[list[str]],
        typer.Option(
            "--allow-host", help="A host name to answer besides localhost, e.g. a reverse proxy's (repeatable)."
        ),
    ] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve the library over HTTP: a JSON API (docs at /docs) and a search page at /."""
    from retrieval.serve import ServeConfig, check_bind, require_serve, run_server

    check_bind(host, token)  # before the model loads: a refusal should be instant
    require_serve()
    config = ServeConfig(
        host=host,
        port=port,
        token=token,
        reranker=reranker,
        max_upload_bytes=int(max_upload_mb * 2**20),
        allowed_hosts=tuple(allow_host or ()),
    )
    with _open(library, None, None, "", device, create=False) as lib:
        print_serving(lib.layout.root, host, port)
        run_server(lib, config)


@app.command()
@friendly_errors
def train(
    pairs: Annotated[Path, typer.Argument(help="Pairs folder (pairs.jsonl + images) or a Karpathy split JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (an open_clip local-dir).")],
    arch: Annotated[
        str,
        typer.Option(
            "--arch", help="Architecture to train from scratch: a shipped name, an open_clip name or a config .json."
        ),
    ] = "xmr-shapes-s",
    init: Annotated[str, typer.Option("--init", help="Fine-tune this model (any --model value) instead.")] = "",
    init_pretrained: Annotated[str, typer.Option("--init-pretrained", help="--pretrained going with --init.")] = "",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Total steps (overrides --epochs).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 1e-3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Warm-up steps.")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    hard_negatives: Annotated[
        bool, typer.Option("--hard-negatives/--no-hard-negatives", help="Use each line's negatives in the loss.")
    ] = True,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Translations and caption-mirroring flips.")
    ] = True,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to train on.")] = "train",
) -> None:
    """Train a dual encoder contrastively on PAIRS into --out (resumes an interrupted run)."""
    from retrieval.training.dual import TrainConfig
    from retrieval.training.dual import train as run_training

    config = TrainConfig(
        arch=arch,
        init=init,
        init_pretrained=init_pretrained,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup,
        seed=seed,
        hard_negatives=hard_negatives,
        augment=augment,
    )
    with TrainProgress() as bar:
        folder = run_training(pairs, out, config, on_progress=bar.update, split=split)
    print_written("model", folder, "--model")


@app.command(name="eval")
@friendly_errors
def evaluate(
    pairs: Annotated[
        Path, typer.Argument(help="Pairs folder (pairs.jsonl + images), pairs.jsonl, or a Karpathy split JSON.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to evaluate (any --model value).")],
    pretrained: PretrainedOpt = None,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to read.")] = "test",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root folder of the Karpathy images.")] = None,
    groups: Annotated[
        Optional[str], typer.Option("--groups", help="Also report per caption group: shapes-world.")
    ] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
) -> None:
    """Recall@1/5/10 both ways and binding (when lines carry negatives) of a model on PAIRS.

    With --reranker, each query's dual top --rerank-k is rescored first (same metrics)."""
    from retrieval.ingest.pairs import load_pairs
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from retrieval.training.evaluate import evaluate as run_eval
    from retrieval.training.evaluate import list_groupings

    if groups is not None and groups not in list_groupings():
        raise typer.BadParameter(f"--groups must be one of {', '.join(list_groupings())}")
    pair_set = load_pairs(pairs, split=split, images_root=images)
    encoder = load_encoder(ModelSpec(model, pretrained or ""), device)
    if reranker:
        from retrieval.training.rerank_eval import evaluate_reranked

        result = evaluate_reranked(pair_set, encoder, reranker, rerank_k, groups, device)
    else:
        result = run_eval(pair_set, encoder, groups)
    print_metrics(result, as_json)


@app.command(name="train-reranker")
@friendly_errors
def train_reranker(
    pairs: Annotated[
        Path,
        typer.Argument(
            help="Pairs folder (pairs.jsonl + images; negatives used when present) or a Karpathy split JSON."
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="The library's encoder (any --model value); it stays frozen.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Reranker folder to write.")],
    pretrained: PretrainedOpt = None,
    fusion: Annotated[
        str,
        typer.Option(
            "--fusion", help="Fusion head: cross-attention, attention-pool, single-stream, bilinear or concat."
        ),
    ] = "cross-attention",
    steps: Annotated[int, typer.Option("--steps", min=1)] = 800,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Caption lines per step.")] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 1e-3,
    width: Annotated[
        int, typer.Option("--width", min=0, help="Channels inside the head (0: the encoder's embedding size).")
    ] = 64,
    layers: Annotated[int, typer.Option("--layers", min=1, help="Fusion layers (hops).")] = 2,
    pool: Annotated[
        int, typer.Option("--pool", min=1, help="Average-pool the image patch grid by this factor first.")
    ] = 2,
    align: Annotated[
        bool,
        typer.Option(
            "--align-init/--no-align-init", help="Start the head from the encoder's output projections (width 0)."
        ),
    ] = False,
    mirror: Annotated[
        bool,
        typer.Option(
            "--mirror/--no-mirror", help="Mirror half the lines: token grid columns and left/right in captions."
        ),
    ] = False,
    spatial: Annotated[
        bool,
        typer.Option(
            "--spatial/--no-spatial", help="The head's spatial readout (where each word looks, into the score)."
        ),
    ] = True,
    relation_steps: Annotated[
        int,
        typer.Option(
            "--relation-steps",
            min=0,
            help="First steps on caption vs relations-reversed caption alone (part of --steps).",
        ),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    split: Annotated[str, typer.Option("--split", help="Karpathy split to train on.")] = "train",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root folder of the Karpathy images.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Train a reranker over MODEL's frozen token features on PAIRS into --out (resumes)."""
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from retrieval.rerank.heads import list_heads
    from retrieval.training.rerank_train import RerankTrainConfig
    from retrieval.training.rerank_train import train_reranker as run_training

    if fusion not in list_heads():
        raise typer.BadParameter(f"--fusion must be one of {', '.join(list_heads())}")
    encoder = load_encoder(ModelSpec(model, pretrained or ""), device)
    config = RerankTrainConfig(
        fusion=fusion,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        width=width,
        layers=layers,
        pool=pool,
        align_init=align,
        mirror=mirror,
        spatial=spatial,
        relation_steps=relation_steps,
        seed=seed,
    )
    with RerankProgress() as bar:
        folder = run_training(pairs, encoder, out, config, on_progress=bar.update, split=split, images_root=images)
    print_written("reranker", folder, "--reranker")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
