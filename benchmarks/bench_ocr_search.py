"""Search by the words in photos, on the generated OCR test set (benchmarks/ocr_testset.py).

Indexes the set with ``--ocr`` through the public API, then asks, for every dictionary word
that was rendered (one-word queries) and for word pairs rendered together (two-word
queries), for the top 10 in keyword mode, hybrid mode, semantic mode (the baseline) and
as a ``--contains WORD`` filter on a semantic query. An image is relevant when the word
(both words) was rendered on it. recall@10 = relevant found / min(10, relevant);
precision = relevant found / found. Fusion variants are compared on the same rankings.
Indexing rates with and without OCR are measured on the first ``--timing-count`` images.

    python benchmarks/ocr_testset.py --out /tmp/ocr-set --count 500
    nice python benchmarks/bench_ocr_search.py /tmp/ocr-set --model tiny --work /tmp/ocr-bench
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import time
from pathlib import Path

from _common import environment, environment_line

from index.keywords import tokens
from index.records import ImageFilter
from retrieval import Library
from retrieval.ingest.ocr import OcrConfig
from retrieval.search.keyword import fuse, keyword_ranking


def load_encoder(name: str, work: Path):  # noqa: ANN201 (an Encoder)
    from retrieval.models.encoder import load_encoder as load
    from retrieval.models.specs import ModelSpec

    if name == "tiny":
        from tests.helpers.tiny_model import make_tiny_model

        return load(ModelSpec(f"local-dir:{make_tiny_model(work / 'tiny-model')}"), "cpu")
    return load(ModelSpec(name, "random"), "cpu")


def index_rate(folder: Path, encoder, work: Path, ocr: bool) -> tuple[float, dict]:  # noqa: ANN001
    """Images per second of one fresh index run over ``folder``."""
    target = work / ("lib-ocr" if ocr else "lib-plain")
    shutil.rmtree(target, ignore_errors=True)
    with Library.open(target, model=encoder) as lib:
        start = time.perf_counter()
        report = lib.index([folder], ocr=ocr)
        seconds = time.perf_counter() - start
    return report.added / seconds, {"added": report.added, "ocr_read": report.ocr_read, "seconds": round(seconds, 1)}


def scores(found: list[str], relevant: set[str]) -> tuple[float, float | None]:
    hit = len(set(found[:10]) & relevant)
    return hit / min(10, len(relevant)), (hit / len(found[:10]) if found else None)


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(sum(kept) / len(kept), 4) if kept else None


def evaluate(lib: Library, truth: list[dict], folder: Path, pairs_cap: int) -> dict:
    words: dict[str, set[str]] = {}
    pairs: dict[tuple[str, str], set[str]] = {}
    for record in truth:
        path = str((folder / record["file"]).resolve())
        for word in record["words"]:
            words.setdefault(word, set()).add(path)
        for line in record["lines"]:
            for a, b in itertools.pairwise(line["words"]):
                pairs.setdefault((a, b), set()).add(path)
    for (a, b), found in pairs.items():  # relevant: images with both words anywhere
        found |= words[a] & words[b]
    queries = {
        "one-word": [(w, rel) for w, rel in sorted(words.items())],
        "two-word": [(f"{a} {b}", rel) for (a, b), rel in sorted(pairs.items())][:pairs_cap],
    }
    out: dict[str, dict] = {}
    for kind, items in queries.items():
        table: dict[str, list] = {}
        for text, relevant in items:
            phrases = [tuple(tokens(w)) for w in text.split()]
            pool = lib.search(text, k=100, mode="semantic")
            semantic = [h.path for h in pool]
            keyword = keyword_ranking(lib.catalog.keywords, phrases)
            paths = {r.id: r.path for r in lib.catalog.images([i for i, _, _ in keyword[:100]]).values()}
            paths.update({h.id: h.path for h in pool})
            semantic_ids = [h.id for h in pool]
            runs = {
                "semantic": semantic,
                "keyword": [h.path for h in lib.search(text, k=10, mode="keyword")],
                "hybrid": [h.path for h in lib.search(text, k=10, mode="hybrid")],
                "hybrid rrf k=10": [paths[i] for i, _ in fuse(semantic_ids, keyword[:100], k=10)[:10]],
                "keyword, then semantic": [paths[i] for i, _, _ in keyword[:10]]
                + [p for p in semantic if p not in {paths[i] for i, _, _ in keyword[:10]}],
            }
            if kind == "one-word":
                where = ImageFilter(contains=(text,))
                runs["--contains WORD"] = [h.path for h in lib.search("a photo", k=10, where=where, mode="semantic")]
            for name, found in runs.items():
                table.setdefault(name, []).append(scores(found[:10], relevant))
        out[kind] = {
            name: {
                "recall@10": mean([r for r, _ in rows]),
                "precision@10": mean([p for _, p in rows]),
                "queries": len(rows),
            }
            for name, rows in table.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default="tiny", help="tiny (the tests' model) or an open_clip name (random weights)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/xmr-ocr-bench"))
    parser.add_argument("--timing-count", type=int, default=40, help="images for the index rate with and without OCR")
    parser.add_argument("--pairs", type=int, default=200, help="two-word queries at most")
    parser.add_argument("--skip-quality", action="store_true", help="only the index rates")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = environment()
    encoder = load_encoder(args.model, args.work)
    subset = args.work / "timing-set"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir()
    for path in sorted(args.folder.glob("*.jpg"))[: args.timing_count]:
        shutil.copy2(path, subset / path.name)
    plain, plain_run = index_rate(subset, encoder, args.work, ocr=False)
    with_ocr, ocr_run = index_rate(subset, encoder, args.work, ocr=True)
    result: dict[str, object] = {
        "model": args.model,
        "ocr_config": OcrConfig().__dict__,
        "index_images_per_s": {"without_ocr": round(plain, 2), "with_ocr": round(with_ocr, 2)},
        "runs": {"without_ocr": plain_run, "with_ocr": ocr_run},
    }
    if not args.skip_quality:
        truth = [json.loads(line) for line in (args.folder / "truth.jsonl").read_text().splitlines()]
        target = args.work / "lib-quality"
        shutil.rmtree(target, ignore_errors=True)
        with Library.open(target, model=encoder) as lib:
            report = lib.index([args.folder], ocr=True)
            result["quality_index"] = {
                "added": report.added,
                "ocr_read": report.ocr_read,
                "seconds": round(report.seconds, 1),
            }
            result["quality"] = evaluate(lib, truth, args.folder, args.pairs)
    result["load_1_5_15"] = [round(v, 2) for v in os.getloadavg()]  # the machine is shared: say how busy it was
    print(json.dumps({**result, "env": env}, indent=1))
    print(environment_line(env))


if __name__ == "__main__":
    main()
