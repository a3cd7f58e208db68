"""Write a Shapes World image-caption pairs folder (see retrieval/training/shapes_world.py).

    .venv/bin/python benchmarks/shapes_world.py OUT --count 2000 [--seed 0] [--size 64] \
        [--two-object-share 0.7] [--split eval|train]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from retrieval.training.shapes_world import generate


def main(argv: list[str] | None = None) -> int:
    """Command line: generate a folder and print the rate; bad arguments exit 2 with a message."""
    parser = argparse.ArgumentParser(description="Write a Shapes World image-caption pairs folder.")
    parser.add_argument("out", type=Path, help="new or empty output folder")
    parser.add_argument("--count", type=int, required=True, help="number of lines (eval: at most 2256)")
    parser.add_argument("--seed", type=int, default=0, help="seed >= 0; same seed -> identical files (default 0)")
    parser.add_argument("--size", type=int, default=64, help="canvas side in pixels (default 64)")
    parser.add_argument("--two-object-share", type=float, default=0.7, help="exact share of two-object lines")
    parser.add_argument("--split", choices=("eval", "train"), default="eval", help="eval: unique captions")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        pairs = generate(args.out, args.count, args.seed, args.size, args.two_object_share, args.split)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    seconds = time.perf_counter() - start
    print(f"wrote {args.count} pairs to {pairs} in {seconds:.1f} s ({args.count / seconds:.0f} images/s, one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
