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

from index.deps import require_torch
from xmr_cli import help_format
from xmr_cli.errors import EXIT_NO_RESULTS, check_some_exist, fail, friendly_errors
from xmr_cli.escape import shown
from xmr_cli.logs import configure as configure_logs
from xmr_cli.logs import quiet
from xmr_cli.options import (
    DEFAULT_RERANK_K,
    AfterOpt,
    AlignOpt,
    AllowHostOpt,
    ArchOpt,
    AugmentOpt,
    BatchSizeOpt,
    BeforeOpt,
    CacheTokensOpt,
    CatalogOpt,
    CheckpointOpt,
    ContainsOpt,
    DeviceOpt,
    DuplicatesJsonOpt,
    EachMomentOpt,
    EncoderOpt,
    EpochsOpt,
    EvalModelOpt,
    ExcludeOpt,
    ExportOutOpt,
    ExtOpt,
    FailuresPrint0Opt,
    ForgetExcludeOpt,
    FusionOpt,
    GroupsOpt,
    HardNegativesOpt,
    HostOpt,
    ImageOpt,
    ImagesRootOpt,
    IndexKindOpt,
    InitOpt,
    InitPretrainedOpt,
    InTextsOpt,
    JsonOpt,
    LayersOpt,
    LibraryOpt,
    LrOpt,
    MaxUploadOpt,
    MediaOpt,
    MemoryBudgetOpt,
    MinScoreOpt,
    MirrorOpt,
    ModelOpt,
    ModeOpt,
    NoFollowOpt,
    NotImageOpt,
    NotOpt,
    NoVideoFramingOpt,
    OcrOpt,
    OcrWorkersOpt,
    OffsetOpt,
    OutOpt,
    PairsArg,
    PathsArg,
    PathsOnlyOpt,
    PollOpt,
    PoolOpt,
    PortOpt,
    PretrainedOpt,
    PreviewOpt,
    Print0Opt,
    RayActorsOpt,
    RayAddressOpt,
    RayGpusOpt,
    RayOpt,
    RelationStepsOpt,
    RerankBatchOpt,
    RerankerOpt,
    RerankKOpt,
    RerankStepsOpt,
    RetryFailedOpt,
    RuntimeOpt,
    SearchJsonOpt,
    SeedOpt,
    ServeRerankerOpt,
    ServeWatchOpt,
    SettleOpt,
    SimilarScoreOpt,
    SortOpt,
    SourcesArg,
    SpatialOpt,
    SplitOpt,
    StepsOpt,
    TextFilesArg,
    TierOpt,
    TokenOpt,
    TopOpt,
    TrainBatchOpt,
    UnderOpt,
    VideoIntervalOpt,
    WarmupOpt,
    WatchJsonOpt,
    WatchPathsArg,
    WeightOpt,
    WidthOpt,
    WordsArg,
    WorkersOpt,
    make_index_config,
    make_ocr_config,
    make_ray_config,
)
from xmr_cli.output import (
    check_output_options,
    err,
    preview_note,
    print_duplicates,
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
    print_version,
    print_watch_batch,
    print_watching,
    print_written,
)
from xmr_cli.process import end, leave_quickly
from xmr_cli.progress import (
    CountProgress,
    IndexProgress,
    RerankProgress,
    TrainProgress,
    watching_in_background,
    working,
)

if TYPE_CHECKING:
    from retrieval import IndexConfig, Library

__all__ = ["app", "main"]

help_format.install()
app = typer.Typer(
    name="xmr",
    help="Cross-modal retrieval: index photo folders, search them by text or by image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


def _version(value: bool) -> None:
    if value:
        print_version()
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, show_default=False, help="More messages: -v info, -vv debug.")
    ] = 0,
    quiet_flag: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only: no progress bars or notes.")] = False,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print xmr's version and exit."),
    ] = None,
) -> None:
    """Cross-modal retrieval: index photo folders, search them by text or by image."""
    configure_logs(verbose, quiet_flag)


def _open(
    library: Optional[Path],
    model: Optional[str] = None,
    pretrained: Optional[str] = None,
    catalog_url: str = "",
    device: str = "auto",
    create: bool = False,
    index_config: IndexConfig | None = None,
    runtime: str = "auto",
    quick_start: bool = False,
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
        runtime=runtime,
        quick_start=quick_start,
    )


@app.command()
@friendly_errors
def index(
    paths: PathsArg,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    catalog_url: CatalogOpt = "",
    device: DeviceOpt = "auto",
    runtime: RuntimeOpt = "auto",
    batch_size: BatchSizeOpt = 32,
    workers: WorkersOpt = 0,
    retry_failed: RetryFailedOpt = False,
    index_kind: IndexKindOpt = None,
    memory_budget: MemoryBudgetOpt = "",
    as_json: JsonOpt = False,
    cache_tokens: CacheTokensOpt = False,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = "",
    ray_gpus: RayGpusOpt = -1.0,
    ray_actors: RayActorsOpt = 0,
    exclude: ExcludeOpt = None,
    forget_exclude: ForgetExcludeOpt = None,
    no_follow: NoFollowOpt = False,
    ocr: OcrOpt = None,
    ocr_workers: OcrWorkersOpt = 0,
    video_interval: VideoIntervalOpt = 2.0,
) -> None:
    """Index (or update) the photos and videos under PATH: new, changed, moved and deleted files.

    NAS and OS debris (@eaDir, #recycle, Thumbs.db, ...) and what .xmrignore files name stay out."""
    from retrieval import IngestConfig, SampleConfig

    video = SampleConfig(interval=video_interval)
    config = IngestConfig(batch_size=batch_size, workers=workers, retry_failed=retry_failed, video=video)
    on_ray = make_ray_config(ray_address, ray_gpus, ray_actors) if ray or ray_address else None
    kind_config = make_index_config(index_kind or "", memory_budget)
    check_some_exist(paths)  # before the model loads, and before a library is made
    with _open(
        library, model, pretrained, catalog_url, device, create=True, index_config=kind_config, runtime=runtime
    ) as lib:
        if forget_exclude:
            lib.forget_exclusions(forget_exclude)
        with IndexProgress(enabled=not as_json and not quiet()) as bar:
            report = lib.index(
                paths,
                config=config,
                on_progress=bar.update,
                on_plan=bar.start,
                on_stage=bar.stage,
                ray=on_ray,
                cache_tokens=cache_tokens,
                exclude=exclude or (),
                follow_symlinks=not no_follow,
                ocr=ocr,
                ocr_config=make_ocr_config(ocr_workers),
                on_ocr_progress=bar.update_ocr,
            )
        discarded = lib.discard()  # a first run that found nothing leaves no empty library
    print_report(report, as_json, discarded)
    if report.missing:
        fail(f"{', '.join(map(shown, report.missing))}: no such file or folder (its images in the library are kept).")
    if discarded:
        raise typer.Exit(EXIT_NO_RESULTS)


@app.command()
@friendly_errors
def search(
    words: WordsArg = None,
    image: ImageOpt = None,
    not_text: NotOpt = None,
    not_image: NotImageOpt = None,
    weight: WeightOpt = None,
    top: TopOpt = 10,
    offset: OffsetOpt = 0,
    min_score: MinScoreOpt = None,
    under: UnderOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    ext: ExtOpt = None,
    media: MediaOpt = "all",
    each_moment: EachMomentOpt = False,
    no_video_framing: NoVideoFramingOpt = False,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    runtime: RuntimeOpt = "auto",
    as_json: SearchJsonOpt = False,
    paths_only: PathsOnlyOpt = False,
    print0: Print0Opt = False,
    in_texts: InTextsOpt = False,
    preview: PreviewOpt = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
    mode: ModeOpt = "auto",
    contains: ContainsOpt = None,
    sort: SortOpt = "relevance",
) -> None:
    """Rank the library's photos and videos (or, with --texts, its texts) by WORDS and --image examples.

    A video is one hit at its best matching moment (path @ 0:01:23); --json adds start and end seconds.

    Words are also looked up in the images' own text (index --ocr), names, captions and
    keywords (--mode). With --reranker, the dual top --rerank-k are rescored and scores are
    match probabilities. Exit 1 when nothing matches.
    """
    from retrieval.search.query import build_filter, build_terms, check_min_score
    from retrieval.search.query_vector import check_image_file

    leave_quickly()  # the library is closed before the command returns; nothing else is open
    images, not_images = [str(p) for p in image or []], [str(p) for p in not_image or []]
    terms = build_terms(words or [], images, not_text or [], not_images, weight or [])
    for path in (*images, *not_images):  # a typo in an example image is said before anything loads
        check_image_file(path)
    where = build_filter([str(p) for p in under or []], after, before, ext or [], contains or [], media)
    check_min_score(min_score)
    check_output_options(as_json=as_json, paths_only=paths_only, print0=print0, preview=preview, in_texts=in_texts)
    if in_texts and where.active:
        raise typer.BadParameter(
            "--under/--after/--before/--ext/--contains/--media filter images; they do not apply with --texts"
        )
    if preview and preview_note():
        err.print(preview_note())
    why = ""
    with (
        _open(library, model, pretrained, device=device, runtime=runtime, quick_start=True) as lib,
        working("searching"),
    ):
        if where.active and lib.count(where) == 0:  # said before any model loads
            print_no_results(False, lib.explain_no_hits(where))
            raise typer.Exit(EXIT_NO_RESULTS)
        rr = lib.load_reranker(reranker) if reranker else None
        if in_texts:
            lone = _lone_image(image, words, not_text, not_image, weight) if rr is not None else None
            found = lib.search_texts(
                image=lone,
                terms=() if lone else terms,
                k=top,
                offset=offset,
                min_score=min_score,
                reranker=rr,
                rerank_k=rerank_k,
            )
            print_text_hits(found, as_json)
        else:
            hits = lib.search(
                terms=terms,
                k=top,
                where=where,
                offset=offset,
                min_score=min_score,
                reranker=rr,
                rerank_k=rerank_k,
                mode=mode,
                sort=sort,
                per_video=not each_moment,
                video_framing=not no_video_framing,
            )
            print_hits(hits, as_json=as_json, paths_only=paths_only, preview=preview, print0=print0)
            why = "" if hits else lib.explain_no_hits(where, min_score=min_score, offset=offset)
    if not (found if in_texts else hits):
        print_no_results(in_texts, why)
        raise typer.Exit(EXIT_NO_RESULTS)


def _lone_image(image: Optional[list[Path]], *others: Optional[list]) -> Optional[Path]:
    """The query's one --image when it has nothing else: image-to-text reranking takes the image itself."""
    return image[0] if image and len(image) == 1 and not any(others) else None


@app.command(name="add-texts")
@friendly_errors
def add_texts(
    files: TextFilesArg,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    runtime: RuntimeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Embed texts into the library's text corpus (for image-to-text search). Re-adding adds nothing twice."""
    with _open(library, model, pretrained, device=device, runtime=runtime) as lib:
        for path in files:
            with CountProgress("texts", enabled=not as_json and not quiet()) as bar:
                report = lib.add_texts(path, on_stage=bar.stage, on_progress=bar.update)
            print_text_report(report, as_json)


@app.command(name="remove-texts")
@friendly_errors
def remove_texts(
    sources: SourcesArg, library: LibraryOpt = None, model: ModelOpt = None, pretrained: PretrainedOpt = None
) -> None:
    """Remove the texts that were added from FILE."""
    with _open(library, model, pretrained) as lib:
        for source in sources:
            print_removed(source, lib.remove_texts(source))


@app.command()
@friendly_errors
def info(
    library: LibraryOpt = None, model: ModelOpt = None, pretrained: PretrainedOpt = None, as_json: JsonOpt = False
) -> None:
    """Counts, model, index kind, dimensions and size on disk of the library."""
    with _open(library, model, pretrained) as lib:
        details = lib.info()
    print_info(details, as_json)


@app.command()
@friendly_errors
def failures(
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    as_json: JsonOpt = False,
    print0: FailuresPrint0Opt = False,
) -> None:
    """List the files that could not be indexed, with the reason."""
    if as_json and print0:
        raise typer.BadParameter("--json and --print0 are two outputs; give one of them.")
    with _open(library, model, pretrained) as lib:
        rows = lib.failures()
    print_failures(rows, as_json, print0)


@app.command()
@friendly_errors
def watch(
    paths: WatchPathsArg,
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    catalog_url: CatalogOpt = "",
    device: DeviceOpt = "auto",
    runtime: RuntimeOpt = "auto",
    exclude: ExcludeOpt = None,
    no_follow: NoFollowOpt = False,
    poll: PollOpt = False,
    settle: SettleOpt = 1.0,
    as_json: WatchJsonOpt = False,
) -> None:
    """Index PATH, then keep indexing what changes in it until Ctrl-C.

    New, changed, moved and deleted photos become searchable within seconds; searches in
    other processes keep working. A restart catches up with what changed meanwhile."""
    from retrieval.ingest.watch import WatchConfig, Watcher

    with _open(library, model, pretrained, catalog_url, device, create=True, runtime=runtime) as lib:
        if exclude:
            lib.add_exclusions(exclude)
        config = WatchConfig(settle_seconds=settle, poll=poll, follow_symlinks=not no_follow)
        watcher = Watcher(lib, paths, config, on_batch=lambda report, roots: print_watch_batch(report, roots, as_json))
        print_watching(paths)
        watcher.run()


@app.command()
@friendly_errors
def duplicates(
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    tier: TierOpt = None,
    min_score: SimilarScoreOpt = 0.95,
    as_json: DuplicatesJsonOpt = False,
) -> None:
    """Groups of duplicate photos: exact copies, near copies (re-encoded, resized, cropped...) and
    similar shots, each with a suggested keeper and why. Read-only: never deletes or moves a photo.

    Exit 1 when there are none."""
    from retrieval import DuplicateConfig
    from retrieval.search.duplicates import TIERS

    tiers = tuple(t.strip() for value in tier or [] for t in value.split(",") if t.strip())
    config = DuplicateConfig(similar_score=min_score, tiers=tiers or TIERS)
    with _open(library, model, pretrained) as lib, working("comparing"):
        report = lib.duplicates(config)
    print_duplicates(report, as_json)
    if not report.groups:
        raise typer.Exit(EXIT_NO_RESULTS)


@app.command()
@friendly_errors
def serve(
    library: LibraryOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    token: TokenOpt = "",
    reranker: ServeRerankerOpt = "",
    max_upload_mb: MaxUploadOpt = 20.0,
    allow_host: AllowHostOpt = None,
    device: DeviceOpt = "auto",
    watch_paths: ServeWatchOpt = None,
    poll: PollOpt = False,
    runtime: RuntimeOpt = "auto",
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
    with _open(library, model, pretrained, device=device, runtime=runtime) as lib:
        if not quiet():
            err.print("loading the model…")
        on_ready = lambda: print_serving(lib.layout.root, host, port)  # noqa: E731
        if not watch_paths:
            run_server(lib, config, on_ready=on_ready)
            return
        from retrieval.ingest.watch import WatchConfig, Watcher

        watcher = Watcher(
            lib, watch_paths, WatchConfig(poll=poll), on_batch=lambda r, p: print_watch_batch(r, p, False)
        )
        with watching_in_background(watcher):
            run_server(lib, config, on_ready=on_ready)


@app.command()
@friendly_errors
def train(
    pairs: PairsArg,
    out: OutOpt,
    arch: ArchOpt = "xmr-shapes-s",
    init: InitOpt = "",
    init_pretrained: InitPretrainedOpt = "",
    epochs: EpochsOpt = 10,
    steps: StepsOpt = 0,
    batch_size: TrainBatchOpt = 256,
    lr: LrOpt = 1e-3,
    warmup: WarmupOpt = 50,
    seed: SeedOpt = 0,
    hard_negatives: HardNegativesOpt = True,
    augment: AugmentOpt = True,
    split: SplitOpt = "train",
    checkpoint_seconds: CheckpointOpt = 60.0,
) -> None:
    """Train a dual encoder contrastively on PAIRS into --out (resumes an interrupted run)."""
    require_torch("xmr train")
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
        checkpoint_seconds=checkpoint_seconds,
    )
    with TrainProgress(enabled=not quiet()) as bar:
        folder = run_training(pairs, out, config, on_progress=bar.update, on_stage=bar.stage, split=split)
    print_written("model", folder, "--model")


@app.command(name="eval")
@friendly_errors
def evaluate(
    pairs: PairsArg,
    model: EvalModelOpt,
    pretrained: PretrainedOpt = None,
    split: SplitOpt = "test",
    images: ImagesRootOpt = None,
    groups: GroupsOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    reranker: RerankerOpt = "",
    rerank_k: RerankKOpt = DEFAULT_RERANK_K,
) -> None:
    """Recall@1/5/10 both ways and binding (when lines carry negatives) of a model on PAIRS.

    With --reranker, each query's dual top --rerank-k is rescored first (same metrics)."""
    require_torch("xmr eval")
    from retrieval.ingest.pairs import load_pairs
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from retrieval.training.evaluate import evaluate as run_eval

    if reranker:
        from retrieval.rerank.load import check_reranker_spec

        check_reranker_spec(reranker)  # before the model loads
    pair_set = load_pairs(pairs, split=split, images_root=images)
    with CountProgress("done", enabled=not as_json and not quiet()) as bar:
        bar.stage("loading the model")
        encoder = load_encoder(ModelSpec(model, pretrained or ""), device)
        if reranker:
            from retrieval.training.rerank_eval import evaluate_reranked

            bar.stage(f"embedding {len(pair_set.images)} images and reranking")
            result = evaluate_reranked(pair_set, encoder, reranker, rerank_k, groups, device)
        else:
            result = run_eval(pair_set, encoder, groups, on_stage=bar.stage, on_progress=bar.update)
    print_metrics(result, as_json)


@app.command(name="train-reranker")
@friendly_errors
def train_reranker(
    pairs: PairsArg,
    model: EncoderOpt,
    out: OutOpt,
    pretrained: PretrainedOpt = None,
    fusion: FusionOpt = "cross-attention",
    steps: RerankStepsOpt = 800,
    batch_size: RerankBatchOpt = 64,
    lr: LrOpt = 1e-3,
    width: WidthOpt = 64,
    layers: LayersOpt = 2,
    pool: PoolOpt = 2,
    align: AlignOpt = False,
    mirror: MirrorOpt = False,
    spatial: SpatialOpt = True,
    relation_steps: RelationStepsOpt = 200,
    seed: SeedOpt = 0,
    split: SplitOpt = "train",
    images: ImagesRootOpt = None,
    device: DeviceOpt = "auto",
    checkpoint_seconds: CheckpointOpt = 60.0,
) -> None:
    """Train a reranker over MODEL's frozen token features on PAIRS into --out (resumes)."""
    require_torch("xmr train-reranker")
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from retrieval.training.rerank_train import RerankTrainConfig
    from retrieval.training.rerank_train import train_reranker as run_training

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
        checkpoint_seconds=checkpoint_seconds,
    )
    with RerankProgress(enabled=not quiet()) as bar:
        folder = run_training(pairs, encoder, out, config, on_progress=bar.update, split=split, images_root=images)
    print_written("reranker", folder, "--reranker")


@app.command(name="export-model")
@friendly_errors
def export_model(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="open_clip name, local-dir:PATH, a model folder or hf-hub:ORG/REPO.")
    ],
    out: ExportOutOpt,
    pretrained: PretrainedOpt = None,
) -> None:
    """Write MODEL as ONNX (both towers, tokenizer.json, preprocessing) in Immich's folder layout.

    The folder works as --model on machines without torch; its vectors are MODEL's own."""
    require_torch("xmr export-model")
    from retrieval.models.export import export_spec
    from retrieval.models.identity import model_spec

    with working("exporting (checked against torch before it is written)"):
        info = export_spec(model_spec(model, pretrained), out)
    print_written("ONNX export", info.folder, "--model")


def main() -> None:
    """Console entry point (a search leaves without interpreter teardown: see xmr_cli/process.py)."""
    try:
        app()
    except SystemExit as done:
        end(done.code)


if __name__ == "__main__":
    main()
