"""Opening an ONNX tower: the file as exported vs its fast-load copy, with and without pre-packing.

    .venv/bin/python benchmarks/bench_tower_open.py --export /tmp/xmr-vs-rclip/export --repeats 5

For each tower of an export folder (``textual``, ``visual``), each variant runs in a fresh
process (as a command-line search does), interleaved round by round, and reports the
median seconds to create the session and to run one input (a 7-token text, one image):

  exported      the tower file as exported (one protobuf file), onnxruntime's defaults
  fast copy     the copy xmr writes once into its cache (weights in a file onnxruntime maps)
  fast, no pre-pack
                that copy with ``session.disable_prepacking`` (what ``xmr search`` opens)

The copies are made first, in a scratch cache (``--work``), by :func:`retrieval.models.fast_load.fast_tower`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import environment, environment_line, markdown_table, median, write_json

PROBE = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
path, prepack = sys.argv[1], sys.argv[2] == "1"
options = ort.SessionOptions()
options.log_severity_level = 3
if not prepack:
    options.add_session_config_entry("session.disable_prepacking", "1")
start = time.perf_counter()
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
opened = time.perf_counter()
meta = session.get_inputs()[0]
if "int" in meta.type:
    dtype = np.int64 if "int64" in meta.type else np.int32
    batch = np.array([[49406, 320, 1125, 539, 320, 1929, 49407]], dtype=dtype)
else:
    size = meta.shape[2] if isinstance(meta.shape[2], int) else 224
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
session.run(None, {meta.name: batch})
ran = time.perf_counter()
print(json.dumps({"open_s": opened - start, "run_s": ran - opened}))
"""


def probe(path: Path, prepack: bool) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), "1" if prepack else "0"], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="an export folder (xmr export-model, or Immich's)")
    parser.add_argument("--work", type=Path, default=None, help="scratch cache for the fast-load copies")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write JSON results here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="xmr-bench-open-"))
    os.environ["XDG_CACHE_HOME"] = str(work)
    import onnxruntime as ort

    from retrieval.models import fast_load

    env = environment(("numpy", "onnxruntime"))
    towers = {name: args.export / name / "model.onnx" for name in ("textual", "visual")}
    copies = {name: fast_load.fast_tower(path, ort) for name, path in towers.items()}
    variants = {
        "exported": lambda name: (towers[name], True),
        "fast copy": lambda name: (copies[name], True),
        "fast, no pre-pack": lambda name: (copies[name], False),
    }
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for name in towers:
            for variant, pick in variants.items():
                path, prepack = pick(name)
                found.setdefault((name, variant), []).append(probe(path, prepack))
    rows, results = [], {}
    for (name, variant), runs in found.items():
        opened, ran = median([r["open_s"] for r in runs]), median([r["run_s"] for r in runs])
        results[f"{name}/{variant}"] = {"open_s": opened, "run_s": ran, "runs": runs}
        rows.append([name, variant, f"{towers[name].stat().st_size / 2**20:.0f}", f"{opened:.3f}", f"{ran:.3f}",
                     f"{opened + ran:.3f}"])  # fmt: skip
    print(markdown_table(["tower", "variant", "MB", "open s", "first run s", "open + run s"], rows))
    print(f"medians of {args.repeats} fresh processes; {environment_line(env)}")
    write_json(args.out, {"environment": env, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
