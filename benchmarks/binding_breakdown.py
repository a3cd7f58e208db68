"""Where binding is lost: each kind of negative split by what the two objects share.

In a Shapes World two-object scene whose objects have the same shape ("a green circle to
the left of a blue circle"), swapping the colours gives the same picture as reversing the
relation; likewise swapping the shapes when both objects have the same colour. So a model
that cannot read relations also fails those colour and shape swaps, however well it binds
colours to shapes. This script shows it: for the dual encoder alone and, with
``--reranker``, for the reranker's scores, the share of lines whose caption beats each
kind of own negative, split by scene (one object; two objects differing in both colour and
shape; same shape; same colour), and binding (caption beats all its negatives) per scene.

    .venv/bin/python benchmarks/binding_breakdown.py --encoder OUT/encoder --test OUT/test \\
        [--reranker OUT/reranker] [--out breakdown.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import _common
import numpy as np

from retrieval.ingest.pairs import load_pairs
from retrieval.models.encoder import load_encoder
from retrieval.models.specs import ModelSpec
from retrieval.training.corpus import encode_image_bank, encode_text_bank, pair_texts
from retrieval.training.shapes_world import negative_kind as shapes_world_negative_kind
from retrieval.training.shapes_world import word_kinds

_WORDS = word_kinds()


def scene(caption: str) -> str:
    """ "one object", "both differ", "same shape" or "same colour" for a Shapes World caption."""
    words = caption.split()
    colours = [w for w in words if w in _WORDS["colour"]]
    shapes = [w for w in words if w in _WORDS["shape"]]
    if len(shapes) < 2:
        return "one object"
    if shapes[0] == shapes[1]:
        return "same shape"
    return "same colour" if colours[0] == colours[1] else "both differ"


def breakdown(pairs, texts, images, score) -> dict[str, dict[str, float | int]]:  # noqa: ANN001
    """``{scene: {kind: share of wins, ..., "binding": share, "lines": n}}`` under ``score``."""
    wins: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for line, negatives in enumerate(pairs.negatives):
        if not negatives:
            continue
        caption, image = pairs.captions[line], pairs.caption_image[line]
        rows = np.array([texts.index[caption], *(texts.index[n] for n in negatives)])
        scores = score(rows, np.full(len(rows), image))
        where = wins[scene(caption)]
        for negative, value in zip(negatives, scores[1:]):
            where[shapes_world_negative_kind(caption, negative)].append(bool(scores[0] > value))
        where["binding"].append(bool(scores[0] > scores[1:].max()))
    return {
        name: {
            **{kind: round(float(np.mean(v)), 3) for kind, v in sorted(kinds.items())},
            "lines": len(kinds["binding"]),
        }
        for name, kinds in sorted(wins.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True, help="Shapes World pairs with negatives")
    parser.add_argument("--reranker", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    encoder = load_encoder(ModelSpec(str(args.encoder), ""), args.device)
    pairs = load_pairs(args.test)
    if not any(pairs.negatives):
        sys.exit(f"{args.test} has no negatives: the breakdown needs Shapes World pairs with negatives")
    images, texts = encode_image_bank(encoder, pairs.images), encode_text_bank(encoder, pair_texts(pairs))
    result = {
        "dual": breakdown(pairs, texts, images, lambda t, i: np.einsum("pd,pd->p", texts.vectors[t], images.vectors[i]))
    }
    if args.reranker:
        from retrieval.rerank.model import load_reranker
        from retrieval.training.rerank_eval import net_scorer

        result["reranker"] = breakdown(
            pairs, texts, images, net_scorer(load_reranker(args.reranker, encoder.identity).net, texts, images)
        )
    for name, scenes in result.items():
        print(f"{name}:")
        for where, kinds in scenes.items():
            print(f"  {where:12s} " + "  ".join(f"{k} {v}" for k, v in kinds.items()))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "environment": _common.environment(),
                    "result": result,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
