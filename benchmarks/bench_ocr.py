"""OCR quality and cost on the generated test set (``benchmarks/ocr_testset.py``).

Word recall: of the words rendered into an image, the share whose tokens the engine read
in a row (``42.50`` counts when ``42 50`` was read). Word precision: of the tokens read,
the share that belong to a rendered word (multiset match per image). Cost: OCR seconds
per image (decode not counted) on images with text, and on the same backgrounds without
any (``--blank``), medians of wall time and of CPU time; one OCR engine, ``--threads``
onnxruntime threads.

    python benchmarks/ocr_testset.py --out /tmp/ocr-set --count 500
    nice python benchmarks/bench_ocr.py /tmp/ocr-set --limit 100 --blank 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import environment, environment_line
from ocr_testset import background, load_backgrounds

from index.keywords import contains_phrase, tokens
from retrieval.images.decode import DecodeConfig, decode_file
from retrieval.ingest.ocr import OcrConfig, OcrEngine, engine_name


def score_image(truth_words: list[str], read: list[str]) -> tuple[int, int, int, int]:
    """(words found, words, tokens right, tokens read) for one image."""
    found = sum(contains_phrase(read, tokens(word)) for word in truth_words)
    expected = Counter(t for word in truth_words for t in tokens(word))
    right = sum((Counter(read) & expected).values())
    return found, len(truth_words), right, len(read)


def run(folder: Path, config: OcrConfig, limit: int, blank: int) -> dict:
    engine = OcrEngine(config)
    records = [json.loads(line) for line in (folder / "truth.jsonl").read_text().splitlines()][:limit]
    decode = DecodeConfig(draft_side=config.max_side // 2)
    totals = np.zeros(4, np.int64)
    seconds, cpu = [], []
    for record in records:
        image = np.asarray(decode_file(folder / record["file"], decode).image)
        start, start_cpu = time.perf_counter(), time.process_time()
        lines = engine.read(image)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        read = [t for line in lines for t in tokens(line.text)]
        totals += score_image(record["words"], read)
    rng = np.random.default_rng(12345)
    photos = load_backgrounds()
    empty, empty_cpu, false_lines = [], [], 0
    for _ in range(blank):
        image = np.asarray(background(rng, photos))
        start, start_cpu = time.perf_counter(), time.process_time()
        false_lines += len(engine.read(image))
        empty.append(time.perf_counter() - start)
        empty_cpu.append(time.process_time() - start_cpu)
    found, words, right, read = (int(v) for v in totals)
    return {
        "images": len(records),
        "word_recall": round(found / max(1, words), 4),
        "word_precision": round(right / max(1, read), 4),
        "words": words,
        "tokens_read": read,
        "s_per_image_text": round(statistics.median(seconds), 3) if seconds else None,
        "s_per_image_blank": round(statistics.median(empty), 3) if empty else None,
        # CPU seconds (this process, all its threads): what a busy shared machine does not inflate
        "cpu_s_per_image_text": round(statistics.median(cpu), 3) if cpu else None,
        "cpu_s_per_image_blank": round(statistics.median(empty_cpu), 3) if empty_cpu else None,
        "blank_images": blank,
        "lines_on_blank": false_lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=10**9, help="first N images of the set")
    parser.add_argument("--blank", type=int, default=20, help="backgrounds without text to time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-side", type=int, default=OcrConfig.max_side)
    parser.add_argument("--det-side", type=int, default=OcrConfig.det_side)
    parser.add_argument("--min-confidence", type=float, default=OcrConfig.min_confidence)
    args = parser.parse_args()
    config = OcrConfig(
        threads=args.threads, max_side=args.max_side, det_side=args.det_side, min_confidence=args.min_confidence
    )
    env = environment(("numpy", "onnxruntime", "cv2", "PIL"))
    result = run(args.folder, config, args.limit, args.blank)
    load = [round(v, 2) for v in os.getloadavg()]  # the machine is shared: say how busy it was
    print(json.dumps({**result, "engine": engine_name(), "config": config.__dict__, "load_1_5_15": load, "env": env}))
    print(environment_line(env))


if __name__ == "__main__":
    main()
