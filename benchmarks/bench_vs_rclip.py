"""xmr and rclip side by side: the same random ViT-B-32-256 weights, the same 1,000 photos, one run.

Two steps, each a subcommand:

``prepare`` (run with the full venv: it needs torch, open_clip, onnx and scikit-image)
    1. a model folder of seeded random ViT-B-32-256 weights (open_clip_config.json + safetensors);
    2. its ONNX export by ``xmr export-model`` (xmr's model) and the same two towers with their
       input renamed to ``input`` under rclip's file names (rclip's model), plus open_clip's BPE
       vocabulary where rclip looks for it: both tools run the same weights, offline;
    3. PHOTOS distinct photos made from scikit-image's real photos (crops, flips, colour,
       sizes), and one more outside the library for image queries;
    4. both indexes (xmr on onnxruntime, rclip), timed once;
    5. a check that both tools embed the same text alike (cosine of their vectors).

``run`` (any venv with xmr's ``xmr`` script; rclip from its own venv)
    every figure interleaved (xmr, rclip, xmr, rclip, ...), ``--repeats`` times, medians:
    a new text in a fresh process, a repeated text, an image query of a file outside the
    library, indexing ``--index-photos`` photos end to end (xmr onnx, xmr torch, rclip),
    resident memory (an idle ``xmr serve`` before and after its first query; peak of one
    search process of each tool) and install sizes (``du -s`` of the venvs). Writes
    ``results.json`` and ``results.md`` (a markdown table with commit, hardware and load).

    .venv/bin/python benchmarks/bench_vs_rclip.py prepare --work /tmp/xmr-vs-rclip
    .venv/bin/python benchmarks/bench_vs_rclip.py run --work /tmp/xmr-vs-rclip --repeats 5 \\
        --slim-venv /tmp/xmr-slim

rclip indexes the current folder on every run unless given ``-n``: its searches run with
``-n`` after its indexing run, so neither tool indexes while a search is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import REPO_ROOT, environment, environment_line, markdown_table, median, write_json

ARCH = "ViT-B-32-256"
RCLIP_MODEL_DIR = "ViT-B-32-256-datacomp_s34b_b86k"  # the folder name rclip 3.x loads its towers from
DEFAULT_RCLIP = "/work/scratch/rclip/venv"
SOURCES = (  # scikit-image's bundled photos (no download)
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "stereo_motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "moon",
    "coins",
    "grass",
    "gravel",
    "brick",
)


# ---- prepare ---------------------------------------------------------------------------------


def make_model(folder: Path, seed: int) -> None:
    """Seeded random ViT-B-32-256 weights as an open_clip model folder."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_name": ARCH, "model_cfg": open_clip.get_model_config(ARCH), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def rclip_datadir(export: Path, datadir: Path) -> None:
    """The export's towers under rclip's file names, their single input named ``input``.

    rclip feeds int64 tokens; xmr's text tower takes int32, so a Cast in front bridges them."""
    import gzip

    import onnx
    import open_clip
    from onnx import TensorProto, helper

    target = datadir / RCLIP_MODEL_DIR
    target.mkdir(parents=True, exist_ok=True)
    for tower, name in (("visual", "visual.onnx"), ("textual", "textual.onnx")):
        model = onnx.load(str(export / tower / "model.onnx"))
        (graph_input,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        old, kind = graph_input.name, graph_input.type.tensor_type.elem_type
        graph_input.name = "input"
        if kind == TensorProto.INT32:  # rclip's tokens are int64: the graph casts them to what it was made for
            graph_input.type.tensor_type.elem_type = TensorProto.INT64
            model.graph.node.insert(0, helper.make_node("Cast", ["input"], [old], to=TensorProto.INT32))
        else:
            for node in model.graph.node:
                node.input[:] = ["input" if x == old else x for x in node.input]
        onnx.checker.check_model(model)
        onnx.save(model, str(target / name))
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    (datadir / "tokenizer").mkdir(parents=True, exist_ok=True)
    with gzip.open(vocab) as src:  # a check that it is the gzip file rclip reads
        src.read(16)
    shutil.copyfile(vocab, datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")


def _sources() -> list:
    import numpy as np
    import skimage.data
    from PIL import Image

    photos = []
    for name in SOURCES:
        loaded = getattr(skimage.data, name)()
        array = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)  # the stereo pair's left view
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) / max(1e-9, float(array.max())))).astype(np.uint8)
        photos.append(Image.fromarray(array).convert("RGB"))
    return photos


def make_photos(folder: Path, count: int, seed: int) -> None:
    """``count`` distinct JPEGs: a source photo cropped, maybe flipped, recoloured and resized."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageOps

    sources = _sources()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = sources[i % len(sources)]
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.45, 1.0)), int(h * rng.uniform(0.45, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = image.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        for enhance in (ImageEnhance.Color, ImageEnhance.Brightness, ImageEnhance.Contrast):
            image = enhance(image).enhance(float(rng.uniform(0.6, 1.4)))
        tint = Image.new("RGB", image.size, tuple(int(c) for c in rng.integers(0, 256, 3)))
        image = Image.blend(image, tint, float(rng.uniform(0.0, 0.25)))
        long_side = int(rng.integers(480, 1280))
        scale = long_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
        image.save(folder / f"photo_{i:05d}.jpg", quality=88)


def prepare(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = _tool_env(work)
    model, export, datadir = work / "model", work / "export", work / "rclip-data"
    if not (model / "open_clip_model.safetensors").is_file():
        print("model: seeded random", ARCH)
        make_model(model, args.seed)
    if not (export / "xmr_export.json").is_file():
        print("export: xmr export-model")
        _check([_xmr(args), "export-model", f"local-dir:{model}", "--out", str(export)], env)
    if not (datadir / RCLIP_MODEL_DIR / "textual.onnx").is_file():
        print("rclip's model files")
        rclip_datadir(export, datadir)
    photos = work / "photos"
    if not photos.is_dir() or len(list(photos.glob("*.jpg"))) != args.photos:
        shutil.rmtree(photos, ignore_errors=True)
        print(f"photos: {args.photos}")
        make_photos(photos, args.photos, args.seed)
        make_photos(work / "outside", 1, args.seed + 1)
    timings = {}
    if not (work / "xmr-lib" / "manifest.json").is_file():
        print("xmr index (onnxruntime)")
        timings["xmr_index_s"] = _timed(
            [_xmr(args), "index", str(photos), *_xmr_lib(work), "--model", str(export)], env
        )
    if not (datadir / "db.sqlite3").is_file():
        print("rclip index")
        timings["rclip_index_s"] = _timed([_rclip(args), "a photo"], env, cwd=photos)
    parity = text_parity(args, work)
    print(f"prepared in {work}: {timings}; text vectors of both tools: cosine {parity:.6f}")
    write_json(work / "prepare.json", {"environment": environment(), "timings": timings, "text_cosine": parity})


def text_parity(args: argparse.Namespace, work: Path) -> float:
    """Cosine between the two tools' vectors of one text (same weights: about 1)."""
    import numpy as np

    text = "a cat sleeping on a red sofa"
    ours = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, numpy as np; from retrieval.models.exports import read_export; "
            "from retrieval.models.onnx_encoder import OnnxEncoder; "
            f"v = OnnxEncoder(read_export(sys.argv[1]), 'cpu').encode_texts([{text!r}])[0]; print(list(map(float, v)))",
            str(work / "export"),
        ],
        env=_tool_env(work),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = subprocess.run(
        [
            str(Path(args.rclip) / "bin" / "python"),
            "-c",
            f"from rclip.model import Model; print(list(map(float, Model().compute_text_features([{text!r}])[0])))",
        ],
        env=_tool_env(work),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    a, b = np.array(json.loads(ours)), np.array(json.loads(theirs))
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---- run -------------------------------------------------------------------------------------


def _tool_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        RCLIP_DATADIR=str(work / "rclip-data"),
        XDG_CACHE_HOME=str(work / "cache"),  # xmr's export cache and weights-hash cache: this run's own
        PYTHONPATH=str(REPO_ROOT),  # this tree's xmr, whatever venv runs it
    )
    return env


def _xmr(args: argparse.Namespace) -> str:
    return str(Path(args.xmr_venv) / "bin" / "xmr")


def _rclip(args: argparse.Namespace) -> str:
    return str(Path(args.rclip) / "bin" / "rclip")


def _xmr_lib(work: Path) -> list[str]:
    return ["--library", str(work / "xmr-lib")]


def _check(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: a search found nothing
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _measured(command: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stdout}\n{stderr}")
    return seconds, usage.ru_maxrss // 1024, stdout


def _timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    return _measured(command, env, cwd)[0]


def searches(args: argparse.Namespace, work: Path) -> dict[str, dict[str, list[float]]]:
    """Fresh-process searches, interleaved xmr / rclip, ``args.repeats`` of each kind."""
    env = _tool_env(work)
    photos, outside = work / "photos", work / "outside" / "photo_00000.jpg"
    xmr = [_xmr(args), "search", *_xmr_lib(work), "-k", "10", "--paths"]
    rclip = [_rclip(args), "-n", "-f", "-t", "10"]
    repeated = "a bright red rocket on a launch pad"
    _check([*xmr, repeated], env)  # cached by xmr from here on
    figures: dict[str, dict[str, list[float]]] = {
        kind: {"xmr": [], "rclip": []} for kind in ("start", "new_text", "repeated_text", "image")
    }
    version = {"xmr": [_xmr(args), "--version"], "rclip": [_rclip(args), "--version"]}
    peaks: dict[str, list[int]] = {"xmr": [], "rclip": []}
    stamp = time.time_ns()
    for r in range(args.repeats):
        new = f"a photo of something {stamp} {r}"
        for tool, command in (("xmr", xmr), ("rclip", rclip)):
            figures["start"][tool].append(_timed(version[tool], env, photos))
            seconds, peak, _ = _measured([*command, new], env, photos)
            figures["new_text"][tool].append(seconds)
            peaks[tool].append(peak)
            figures["repeated_text"][tool].append(_timed([*command, repeated], env, photos))
            image_query = ["--image", str(outside)] if tool == "xmr" else [str(outside)]
            figures["image"][tool].append(_timed([*command, *image_query], env, photos))
    figures["peak_rss_mb"] = {tool: [float(p) for p in values] for tool, values in peaks.items()}
    return figures


def indexing(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    """Seconds to index the first ``args.index_photos`` photos into a new library, each tool in turn."""
    env = _tool_env(work)
    subset = work / f"index-{args.index_photos}"
    if not subset.is_dir():
        subset.mkdir()
        for photo in sorted((work / "photos").glob("*.jpg"))[: args.index_photos]:
            os.link(photo, subset / photo.name)
    found: dict[str, list[float]] = {"xmr onnx": [], "xmr torch": [], "rclip": []}
    for _ in range(args.index_repeats):
        for tool in found:
            scratch = Path(tempfile.mkdtemp(prefix="bench-index-", dir=work))
            try:
                if tool == "rclip":
                    command, cwd = [_rclip(args), "a photo"], subset
                    tool_env = dict(env, RCLIP_DATADIR=str(scratch))
                    shutil.copytree(work / "rclip-data" / RCLIP_MODEL_DIR, scratch / RCLIP_MODEL_DIR)
                    shutil.copytree(work / "rclip-data" / "tokenizer", scratch / "tokenizer")
                else:
                    model = (
                        ["--model", str(work / "export")]
                        if tool == "xmr onnx"
                        else ["--model", f"local-dir:{work / 'model'}", "--runtime", "torch"]
                    )
                    xmr = _xmr(args) if tool == "xmr onnx" else str(Path(args.torch_venv) / "bin" / "xmr")
                    command = [xmr, "-q", "index", str(subset), "--library", str(scratch / "lib"), *model]
                    cwd, tool_env = None, env
                if tool == "xmr torch" and not args.torch:
                    continue
                found[tool].append(_timed(command, tool_env, cwd))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return {tool: values for tool, values in found.items() if values}


def serve_memory(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Resident MB of an idle ``xmr serve``: started, then after one text query loaded the text tower."""
    env = _tool_env(work)
    port = 8700 + os.getpid() % 200
    process = subprocess.Popen(
        [_xmr(args), "-q", "serve", *_xmr_lib(work), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/info", timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("xmr serve did not start") from None
                time.sleep(0.5)
        time.sleep(2)
        started = _rss_mb(process.pid)
        urllib.request.urlopen(f"{base}/api/search?q=a+red+rocket&k=10", timeout=300).read()
        time.sleep(2)
        return {
            "serve_started_mb": started,
            "serve_after_query_mb": _rss_mb(process.pid),
            "serve_peak_mb": _rss_mb(process.pid, "VmHWM"),  # the high-water mark, loading included
        }
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _du_mb(path: str) -> float:
    if not path or not Path(path).is_dir():
        return float("nan")
    return int(subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout.split()[0]) / 1024


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def run(args: argparse.Namespace) -> None:
    work = Path(args.work)
    env = environment(("numpy", "onnxruntime", "faiss", "PIL"))
    print(environment_line(env))
    loads = [_load()]
    found = searches(args, work)
    loads.append(_load())
    index_s = indexing(args, work) if args.index_photos else {}
    loads.append(_load())
    memory = serve_memory(args, work)
    sizes = {"xmr slim venv": _du_mb(args.slim_venv), "rclip venv": _du_mb(args.rclip)}
    loads.append(_load())
    rows = []
    for kind, label in (
        ("start", "`--version`, fresh process (s)"),
        ("new_text", "a new text, fresh process (s)"),
        ("repeated_text", "a repeated text, fresh process (s)"),
        ("image", "an image outside the library, fresh process (s)"),
        ("peak_rss_mb", "peak RSS of a new-text search process (MB)"),
    ):
        x, r = median(found[kind]["xmr"]), median(found[kind]["rclip"])
        rows.append([label, f"{x:.2f}", f"{r:.2f}", f"{r / x:.2f}"])
    per_photo = {tool: args.index_photos / median(values) for tool, values in index_s.items()}
    if per_photo:
        rclip_rate = per_photo.get("rclip", float("nan"))
        for tool, rate in per_photo.items():
            if tool != "rclip":
                rows.append([f"indexing {args.index_photos} photos, {tool} (photos/s)", f"{rate:.2f}", "", ""])
        rows.append([f"indexing {args.index_photos} photos (photos/s)", "", f"{rclip_rate:.2f}", ""])
        if "xmr torch" in per_photo:
            rows.append(
                ["indexing: xmr onnx / xmr torch", f"{per_photo['xmr onnx'] / per_photo['xmr torch']:.2f}x", "", ""]
            )
    rows.append(["idle `xmr serve`, started (MB RSS)", f"{memory['serve_started_mb']:.0f}", "", ""])
    rows.append(["idle `xmr serve`, after one text query (MB RSS)", f"{memory['serve_after_query_mb']:.0f}", "", ""])
    rows.append(["`xmr serve` high-water mark after one query (MB VmHWM)", f"{memory['serve_peak_mb']:.0f}", "", ""])
    rows.append(
        ["install size (MB, du -s of the venv)", f"{sizes['xmr slim venv']:.0f}", f"{sizes['rclip venv']:.0f}", ""]
    )
    table = markdown_table(["figure", "xmr", "rclip", "rclip / xmr"], rows)
    header = f"{environment_line(env)}\nrepeats {args.repeats}; load average (1/5/15 min) during the run: {' -> '.join(loads)}"
    print(header)
    print(table)
    (work / "results.md").write_text(f"{header}\n\n{table}\n")
    write_json(
        work / "results.json",
        {
            "environment": env,
            "loads": loads,
            "searches": found,
            "indexing_s": index_s,
            "index_photos": args.index_photos,
            "memory_mb": memory,
            "install_mb": sizes,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("prepare", "run"):
        p = sub.add_parser(name)
        p.add_argument("--work", default="/tmp/xmr-vs-rclip", help="folder for models, photos, libraries, results")
        p.add_argument("--xmr-venv", default=str(Path(sys.executable).parent.parent), help="venv whose bin/xmr runs")
        p.add_argument("--rclip", default=DEFAULT_RCLIP, help="rclip's venv (rclip 3.x)")
        p.add_argument("--seed", type=int, default=0)
    prep = sub.choices["prepare"]
    prep.add_argument("--photos", type=int, default=1000)
    runner = sub.choices["run"]
    runner.add_argument("--repeats", type=int, default=5, help="fresh-process searches of each kind per tool")
    runner.add_argument("--index-photos", type=int, default=200, help="photos indexed per indexing run (0: skip)")
    runner.add_argument("--index-repeats", type=int, default=1)
    runner.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True, help="time torch indexing too")
    runner.add_argument("--torch-venv", default=str(REPO_ROOT / ".venv"), help="a venv with the torch extra")
    runner.add_argument("--slim-venv", default="", help="a venv with  pip install '.[cpu]'  for the install size")
    args = parser.parse_args()
    prepare(args) if args.step == "prepare" else run(args)


if __name__ == "__main__":
    main()
