"""How far the reranker tests' heads get on colour swaps, over training seeds, data seeds and steps.

tests/retrieval/rerank/test_rerank.py trains each fusion head briefly on a 24-line Shapes World
set (32 px, the tiny random test encoder) and asks for >= 0.9 of its colour swaps rejected. This
script repeats that measurement over seeds, so a setting is judged by its spread and not by one
seed (issue 21: the article change "a orange" -> "an orange" looked like it broke the pooled heads;
their pass had been the luck of training seed 0). ``--spelling a`` rewrites the generated files to
generator version 1's "a orange" (the images and the choice of negatives are the same).

    .venv/bin/python benchmarks/rerank_test_seeds.py --heads bilinear,concat --data-seeds 5,6,7 \
        --train-seeds 0,1,2,3 --steps 150,400 --spelling a,an
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retrieval.models.encoder import load_encoder
from retrieval.models.specs import ModelSpec
from retrieval.rerank.model import load_reranker
from retrieval.training import shapes_world
from retrieval.training.rerank_train import RerankTrainConfig, train_reranker
from tests.helpers.rerank_probe import FAST, colour_wins
from tests.helpers.tiny_model import make_tiny_model


def pairs_folder(root: Path, seed: int, spelling: str) -> Path:
    """The test's set (24 train lines, 32 px) for ``seed``; ``spelling`` "a" writes "a orange" (version 1)."""
    out = root / f"data-{seed}-{spelling}"
    if out.exists():
        return out
    shapes_world.generate(out, count=24, seed=seed, size=32, split="train")
    if spelling == "a":
        path = out / "pairs.jsonl"

        def v1(text: str) -> str:
            return " ".join("a" if word == "an" else word for word in text.split())

        records = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text(
            "".join(
                json.dumps({**r, "caption": v1(r["caption"]), "negatives": [v1(n) for n in r["negatives"]]}) + "\n"
                for r in records
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", default="bilinear,concat")
    parser.add_argument("--data-seeds", default="5")
    parser.add_argument("--train-seeds", default="0,1,2,3")
    parser.add_argument("--steps", default="150")
    parser.add_argument("--spelling", default="an", help="a (generator version 1), an (version 2) or both: a,an")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="rerank-test-seeds-"))
    encoder = load_encoder(ModelSpec(f"local-dir:{make_tiny_model(root / 'tiny')}"), device="cpu")
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    print("| steps | data seed | spelling | head | after, per training seed | min | mean | s per run |")
    print("|---|---|---|---|---|---|---|---|")
    for steps, seed, spelling, head in itertools.product(
        ints(args.steps), ints(args.data_seeds), args.spelling.split(","), args.heads.split(",")
    ):
        folder = pairs_folder(root, seed, spelling)
        results, started = [], time.monotonic()
        for train_seed in ints(args.train_seeds):
            config = RerankTrainConfig(**{**FAST, "fusion": head, "steps": steps, "seed": train_seed})
            out = Path(tempfile.mkdtemp(dir=root)) / "reranker"
            results.append(
                colour_wins(load_reranker(train_reranker(folder, encoder, out, config)).net, folder, encoder)
            )
        each = (time.monotonic() - started) / len(results)
        print(
            f"| {steps} | {seed} | {spelling} | {head} | {' '.join(f'{r:.2f}' for r in results)} "
            f"| {min(results):.2f} | {np.mean(results):.3f} | {each:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
