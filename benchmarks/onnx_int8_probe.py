"""Would int8 dynamic quantization of the image tower keep the vectors? (It is offered only if so.)

    .venv/bin/python benchmarks/onnx_int8_probe.py --model ViT-B-32 --pretrained random --out int8.json

Exports the model (xmr export-model's code), quantizes its image tower with onnxruntime's
``quantize_dynamic`` (int8 weights, per tensor and per channel), and reports against the fp32
export: the cosine of each image's two vectors (min, mean), the overlap of the top 10 over a
set of queries (the images' own fp32 vectors and random unit vectors), and the batch latency
of both (median of repeats, noisy on a shared machine). The bar for offering int8 is cosine
>= 0.995 and top-10 overlap >= 0.95. Images: scikit-image's photos plus seeded random ones.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import environment, environment_line, markdown_table, median, write_json

MIN_COSINE = 0.995
MIN_OVERLAP = 0.95


def _images(count: int, seed: int) -> list:
    import skimage.data
    from PIL import Image

    photos = []
    for name in ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "horse", "moon", "page", "clock"):
        array = np.asarray(getattr(skimage.data, name)())
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) / max(1, array.max()))).astype(np.uint8)
        photos.append(Image.fromarray(array).convert("RGB"))
    rng = np.random.default_rng(seed)
    while len(photos) < count:
        shape = (int(rng.integers(64, 400)), int(rng.integers(64, 400)), 3)
        photos.append(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)))
    return photos


def _run(session, pixels: np.ndarray) -> np.ndarray:  # noqa: ANN001
    out = np.concatenate([session.run(None, {"image": pixels[i : i + 16]})[0] for i in range(0, len(pixels), 16)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _latency(session, pixels: np.ndarray, repeats: int) -> float:  # noqa: ANN001
    session.run(None, {"image": pixels})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"image": pixels})
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from retrieval.models.export import export_spec
    from retrieval.models.onnx_encoder import OnnxEncoder
    from retrieval.models.specs import ModelSpec

    env = environment(("numpy", "onnxruntime", "torch", "open_clip"))
    with tempfile.TemporaryDirectory() as tmp:
        info = export_spec(ModelSpec(args.model, args.pretrained), Path(tmp) / "export")
        encoder = OnnxEncoder(info, device="cpu")
        pixels = encoder.stack([encoder.preprocess(image) for image in _images(args.images, 0)])
        fp32 = ort.InferenceSession(str(info.image_path), providers=["CPUExecutionProvider"])
        reference = _run(fp32, pixels)
        rng = np.random.default_rng(1)
        queries = np.concatenate([reference, rng.standard_normal((64, reference.shape[1])).astype(np.float32)])
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = np.argsort(-(queries @ reference.T), axis=1)[:, :10]
        rows, results = [], []
        for per_channel in (False, True):
            path = Path(tmp) / f"int8-{per_channel}.onnx"
            quantize_dynamic(str(info.image_path), str(path), weight_type=QuantType.QInt8, per_channel=per_channel)
            int8 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            vectors = _run(int8, pixels)
            cosine = np.sum(vectors * reference, axis=1)
            top = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
            overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, top)]))
            batch = pixels[:8]
            result = {
                "per_channel": per_channel,
                "cosine_min": float(cosine.min()),
                "cosine_mean": float(cosine.mean()),
                "top10_overlap": overlap,
                "fp32_batch8_s": _latency(fp32, batch, args.repeats),
                "int8_batch8_s": _latency(int8, batch, args.repeats),
                "accepted": bool(cosine.min() >= MIN_COSINE and overlap >= MIN_OVERLAP),
            }
            results.append(result)
            rows.append(
                [
                    per_channel,
                    f"{result['cosine_min']:.4f}",
                    f"{result['cosine_mean']:.4f}",
                    f"{overlap:.3f}",
                    f"{result['fp32_batch8_s'] * 1000:.0f}",
                    f"{result['int8_batch8_s'] * 1000:.0f}",
                    result["accepted"],
                ]
            )
    print(environment_line(env))
    print(
        f"{args.model}/{args.pretrained}, {args.images} images; bar: cosine >= {MIN_COSINE}, overlap >= {MIN_OVERLAP}"
    )
    header = ["per channel", "cos min", "cos mean", "top-10 overlap", "fp32 b8 ms", "int8 b8 ms", "accepted"]
    print(markdown_table(header, rows))
    write_json(args.out, {"environment": env, "model": [args.model, args.pretrained], "results": results})


if __name__ == "__main__":
    main()
