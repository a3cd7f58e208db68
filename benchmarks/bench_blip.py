"""Cost of the BLIP reranker (``--reranker blip:...``): seconds per query at K candidates.

    nice -n 10 python benchmarks/bench_blip.py --configs base,tiny --k 20,50,100 --base-k 20,50
    python benchmarks/bench_blip.py --device cuda --base-k 20,50,100 --base-repeats 5   # on a GPU

No download: ``base`` is the architecture of Salesforce/blip-itm-base-coco (default
``BlipConfig()``: ViT-B/16 at 384 px + BERT-base with cross-attention, ~224M parameters)
with random weights, which costs the same as the real weights; ``tiny`` is the test suite's
32-wide model. Quality is not measured here (random weights). Candidates are JPEG files
(640x480, decoded as the search path decodes them); the query text is 10 words.
``rerank_images`` = one text against K files; ``rerank_texts`` = one image against K texts
(the image is encoded once); decoding the K files alone is timed separately. Medians over
``--repeats`` (``--base-repeats`` for base) after a small warm-up call.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

import _common  # noqa: F401  (sys.path)
import numpy as np
from _common import (
    environment,
    environment_line,
    markdown_table,
    median,
    timed,
    write_json,
)

QUERY = "a man in a red jacket riding a bicycle down the street"
WORDS = sorted(set(QUERY.split()) | {"a", "photo", "of", "dog", "cat", "on", "the", "beach"})


def _processor(image_size: int, max_tokens: int):  # noqa: ANN202
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    # Token count, not vocabulary, sets the cost: every query word is in this small vocab.
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=max_tokens)
    image_processor = transformers.BlipImageProcessor(size={"height": image_size, "width": image_size})
    return transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build(config_name: str, device: str):  # noqa: ANN201
    """A BlipReranker with random weights of the named size, and its parameter count."""
    import torch
    import transformers

    from retrieval.rerank.blip import BlipReranker

    torch.manual_seed(0)
    if config_name == "base":
        config = transformers.BlipConfig()  # the blip-itm-base-coco architecture
    else:
        text = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=16, encoder_hidden_size=32, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                    sep_token_id=3)  # fmt: skip
        vision = dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
        config = transformers.BlipConfig(
            text_config=text, vision_config=vision, projection_dim=16, image_text_hidden_size=16
        )
    model = transformers.BlipForImageTextRetrieval(config).eval().to(device)
    processor = _processor(config.vision_config.image_size, min(512, config.text_config.max_position_embeddings))
    params = sum(p.numel() for p in model.parameters())
    return BlipReranker(f"blip:random-{config_name}", model, processor, device), params


def make_files(folder: Path, n: int) -> list[str]:
    """``n`` smooth random 640x480 JPEGs (what a photo folder holds, size-wise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((640, 480), Image.BICUBIC)
        path = folder / f"img{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def bench(reranker, paths: list[str], ks: list[int], repeats: int) -> list[dict[str, float]]:  # noqa: ANN001
    from retrieval.images.decode import decode_file
    from retrieval.rerank.base import ImageRef

    refs = [ImageRef(id=i, path=p) for i, p in enumerate(paths)]
    texts = [f"{QUERY} {WORDS[i % len(WORDS)]}" for i in range(max(ks))]
    rows = []
    reranker.rerank_images(QUERY, refs[:2], np.zeros(2, dtype=np.float32))  # warm-up
    reranker.rerank_texts(refs[0], texts[:2], np.zeros(2, dtype=np.float32))
    for k in ks:
        dual = np.zeros(k, dtype=np.float32)
        images_s = median([timed(lambda: reranker.rerank_images(QUERY, refs[:k], dual))[0] for _ in range(repeats)])
        texts_s = median([timed(lambda: reranker.rerank_texts(refs[0], texts[:k], dual))[0] for _ in range(repeats)])
        decode_s = median([timed(lambda: [decode_file(p) for p in paths[:k]])[0] for _ in range(repeats)])
        rows.append(
            {
                "k": k,
                "rerank_images_s": images_s,
                "ms_per_pair": 1000 * images_s / k,
                "decode_s": decode_s,
                "rerank_texts_s": texts_s,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,base", help="comma list of tiny, base")
    parser.add_argument("--k", default="20,50,100", help="candidates per query (tiny)")
    parser.add_argument("--base-k", default="20,50", help="candidates per query for base (slow on CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base-repeats", type=int, default=2, help="repeats for base (slow on CPU)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args()

    import torch

    from retrieval.models.encoder import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    ks = {"tiny": [int(k) for k in args.k.split(",")], "base": [int(k) for k in args.base_k.split(",")]}
    env = environment(("numpy", "torch", "transformers", "PIL"))
    env["device"] = (
        torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu, {torch.get_num_threads()} torch threads"
    )
    results: dict[str, object] = {"env": env, "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), max(max(v) for v in ks.values()))
        for name in args.configs.split(","):
            (build_s, (reranker, params)) = timed(lambda: build(name, device))
            rows = bench(reranker, paths, ks[name], args.base_repeats if name == "base" else args.repeats)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            results["configs"][name] = {"params": params, "build_s": build_s, "max_rss_mib": rss, "rows": rows}  # type: ignore[index]
            print(f"\n{name}: {params / 1e6:.1f}M parameters, built in {build_s:.1f} s, peak RSS so far {rss:.0f} MiB")
            table = [
                [
                    r["k"],
                    f"{r['rerank_images_s']:.3f}",
                    f"{r['ms_per_pair']:.1f}",
                    f"{r['decode_s']:.3f}",
                    f"{r['rerank_texts_s']:.3f}",
                ]
                for r in rows
            ]
            print(
                markdown_table(
                    ["K", "rerank_images s", "ms/pair", "of which decoding K files s", "rerank_texts s"], table
                )
            )
            del reranker
    print("\n" + environment_line(env) + f"\ndevice: {env['device']}; load average {os.getloadavg()[0]:.1f}")
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
