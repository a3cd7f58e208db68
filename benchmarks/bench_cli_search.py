"""Wall time of a whole `xmr search "TEXT"` command: a new text against one searched before.

Each run is a new process, as a user's shell runs it: interpreter start, imports, opening
the library, embedding the text (or reading its vector from the library's query cache,
``queries.sqlite``) and printing the hits. Texts never searched before are made unique per
run; the repeated text is searched once first so that it is cached.

    .venv/bin/python benchmarks/bench_cli_search.py --library LIB [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import environment, environment_line, markdown_table, median, write_json


def _xmr(library: str, text: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("xmr")), "search", text, "-k", "10", "--paths", "--library", library],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"xmr search failed: {done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="an indexed library directory")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = environment()
    print(environment_line(env))
    stamp = time.time_ns()
    new = [_xmr(args.library, f"a red circle number {stamp}-{i}") for i in range(args.repeats)]
    _xmr(args.library, "a red circle to the left of a blue square")
    repeated = [_xmr(args.library, "a red circle to the left of a blue square") for _ in range(args.repeats)]
    rows = [
        ["text never searched before (model loaded)", f"{median(new):.2f}", f"{min(new):.2f}"],
        ["text searched before (vector from queries.sqlite)", f"{median(repeated):.2f}", f"{min(repeated):.2f}"],
    ]
    print(markdown_table(["`xmr search` with", "median s", "min s"], rows))
    print(f"ratio: {median(new) / median(repeated):.1f}x")
    write_json(args.out, {"environment": env, "new_s": new, "repeated_s": repeated})


if __name__ == "__main__":
    main()
