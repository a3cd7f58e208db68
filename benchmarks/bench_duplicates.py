"""Duplicates: precision and recall per tier on real photos with known changes, and time at scale.

Quality: scikit-image's bundled photos are the originals (saved as JPEG with camera EXIF).
Each gets copies with known changes: a byte-for-byte copy (exact); JPEG quality 50-95,
resize 0.25-1x, crop 2-10%, stored turned with an EXIF orientation, PNG conversion and
EXIF stripped (near); and a "second shot" (the frame moved 8-12%, exposure and sensor noise
changed: similar). Distinct photos: the originals of other photos and non-overlapping tiles
of large ones. Every file is indexed with ``Library.index`` and grouped by
``Library.duplicates``; pairs are scored per tier against the known truth.

The encoder is ViT-B-32 with seeded random weights (nothing downloads here), so the vector
side of the near tier is a weak gate and the similar tier's figures say nothing about a
trained model: the near tier rests on the perceptual hash, which is model-free, and its
figures are reported with the hash alone and with the random vectors' gate.

Scale: ``--sizes`` synthetic libraries (clustered 512-d unit vectors, 2% near copies with
a few hash bits flipped) written to a catalog, then ``find_duplicates`` timed.

    python benchmarks/bench_duplicates.py --work /tmp/xmr-dups --sizes 10000,100000 --out /tmp/xmr-dups/out.json
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import time
from pathlib import Path

import numpy as np
from _common import environment, environment_line, markdown_table, write_json
from PIL import Image

PHOTOS = (
    "astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "brick", "grass", "gravel",
    "hubble_deep_field", "retina", "moon", "page", "text", "cell", "clock", "logo", "horse",
)  # fmt: skip
TILED = ("hubble_deep_field", "retina", "astronaut", "coffee", "grass", "gravel")  # large: tiles are distinct photos


def _photo(name: str) -> Image.Image:
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return Image.fromarray(array[..., :3] if array.ndim == 3 else array.astype(np.uint8)).convert("RGB")


def _camera_exif(turn: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "XmrCam", "Model 1"
    exif[0x0132] = "2021:06:01 10:00:00"
    if turn:
        exif[0x0112] = turn
    return exif


def build_set(folder: Path, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Write the files; return ``file name -> (source, kind)`` (kind: original, exact, near:*, similar, distinct)."""
    rng = np.random.default_rng(seed)
    truth: dict[str, tuple[str, str]] = {}
    folder.mkdir(parents=True, exist_ok=True)

    def save(image: Image.Image, name: str, source: str, kind: str, **options: object) -> None:
        image.save(folder / name, **options)
        truth[name] = (source, kind)

    for name in PHOTOS:
        image = _photo(name)
        w, h = image.size
        save(image, f"{name}.jpg", name, "original", quality=95, exif=_camera_exif())
        shutil.copy2(folder / f"{name}.jpg", folder / f"{name}-copy.jpg")
        truth[f"{name}-copy.jpg"] = (name, "exact")
        quality = int(rng.integers(50, 96))
        save(image, f"{name}-q{quality}.jpg", name, "near:jpeg", quality=quality)
        scale = float(rng.uniform(0.25, 1.0))
        small = image.resize((max(16, round(w * scale)), max(16, round(h * scale))), Image.Resampling.LANCZOS)
        save(small, f"{name}-x{scale:.2f}.jpg", name, "near:resize", quality=90)
        cut = float(rng.uniform(0.02, 0.10))
        dx, dy = round(w * cut), round(h * cut)
        left, top = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
        save(
            image.crop((left, top, left + w - dx, top + h - dy)),
            f"{name}-crop{cut:.2f}.jpg",
            name,
            "near:crop",
            quality=90,
        )
        save(
            image.transpose(Image.Transpose.ROTATE_90),
            f"{name}-exif8.jpg",
            name,
            "near:exif-rotation",
            quality=90,
            exif=_camera_exif(6),
        )
        save(image, f"{name}.png", name, "near:png")
        save(image, f"{name}-stripped.jpg", name, "near:metadata-stripped", quality=95)  # no EXIF
        shift = float(rng.uniform(0.08, 0.12))
        sx, sy = round(w * shift), round(h * shift * rng.uniform(0, 1))
        frame = np.asarray(image.crop((sx, sy, w, h)).resize((w, h)), np.float32)
        frame = frame * rng.uniform(0.85, 1.15) + rng.normal(0, 4, frame.shape)
        save(Image.fromarray(frame.clip(0, 255).astype(np.uint8)), f"{name}-burst.jpg", name, "similar", quality=90)
    for name in TILED:
        image = _photo(name)
        w, h = image.size
        for i, j in itertools.product(range(2), range(2)):
            tile = image.crop((i * w // 2, j * h // 2, (i + 1) * w // 2, (j + 1) * h // 2))
            save(tile, f"tile-{name}-{i}{j}.jpg", f"tile-{name}-{i}{j}", "distinct", quality=92)
    return truth


def _truth_pairs(truth: dict[str, tuple[str, str]]) -> dict[str, set[frozenset[str]]]:
    pairs: dict[str, set[frozenset[str]]] = {"exact": set(), "near": set(), "similar": set()}
    for a, b in itertools.combinations(sorted(truth), 2):
        (sa, ka), (sb, kb) = truth[a], truth[b]
        if sa != sb:
            continue
        kinds = {ka, kb}
        if kinds == {"original", "exact"}:
            pairs["exact"].add(frozenset((a, b)))
        elif "similar" in kinds:
            pairs["similar"].add(frozenset((a, b)))
        else:
            pairs["near"].add(frozenset((a, b)))
    return pairs


def _predicted_pairs(report, content: dict[int, str]) -> dict[str, set[frozenset[str]]]:  # noqa: ANN001
    """Pairs within each group: exact when the bytes match, near when both are in the keeper's
    near set (keeper, exact and near members), similar otherwise."""
    pairs: dict[str, set[frozenset[str]]] = {"exact": set(), "near": set(), "similar": set()}
    for group in report.groups:
        close = {m.id for m in group.members if m.relation in ("keeper", "exact", "near")}
        for a, b in itertools.combinations(group.members, 2):
            pair = frozenset((Path(a.path).name, Path(b.path).name))
            if content[a.id] == content[b.id]:
                pairs["exact"].add(pair)
            elif a.id in close and b.id in close:
                pairs["near"].add(pair)
            else:
                pairs["similar"].add(pair)
    return pairs


def score_tiers(truth_pairs: dict, predicted: dict) -> dict[str, dict[str, float]]:
    out = {}
    for tier in ("exact", "near", "similar"):
        hit = len(truth_pairs[tier] & predicted[tier])
        out[tier] = {
            "precision": hit / len(predicted[tier]) if predicted[tier] else float("nan"),
            "recall": hit / len(truth_pairs[tier]) if truth_pairs[tier] else float("nan"),
            "true_pairs": len(truth_pairs[tier]),
            "predicted_pairs": len(predicted[tier]),
        }
    return out


def quality(work: Path, encoder) -> dict[str, object]:  # noqa: ANN001
    from retrieval import DuplicateConfig, Library
    from retrieval.images.phash import hamming

    folder = work / "photos"
    shutil.rmtree(work, ignore_errors=True)
    truth = build_set(folder)
    lib = Library.open(work / "library", model=encoder)
    report = lib.index([folder])
    assert report.failed == 0, report.failures
    truth_pairs = _truth_pairs(truth)
    records = {Path(r.path).name: r for r in lib.catalog.indexed_images()}
    content = {r.id: r.content_hash for r in records.values()}
    results: dict[str, object] = {"files": len(truth), "photos": len(PHOTOS)}
    runs = (
        ("exact + near, defaults (random-weight vectors gate near at 0.85)", DuplicateConfig(tiers=("exact", "near"))),
        ("exact + near, the hash alone (no vector gate)", DuplicateConfig(tiers=("exact", "near"), near_score=-1.0)),
        ("all tiers, defaults (similar at 0.95 of random-weight vectors)", DuplicateConfig()),
    )
    for label, config in runs:
        found = lib.duplicates(config)
        results[label] = score_tiers(truth_pairs, _predicted_pairs(found, content))
        results[label]["seconds"] = found.seconds  # type: ignore[index]
    results["near_bits_sweep"] = {
        f"gate {gate} bits {bits}": score_tiers(
            truth_pairs,
            _predicted_pairs(
                lib.duplicates(DuplicateConfig(tiers=("exact", "near"), near_score=gate, near_bits=bits)), content
            ),
        )["near"]
        for gate in (0.85, -1.0)
        for bits in (8, 10, 12, 14, 16, 18, 20)
    }
    by_kind: dict[str, list[int]] = {}
    for name, (source, kind) in truth.items():
        if kind.startswith("near") or kind in ("similar", "exact"):
            by_kind.setdefault(kind, []).append(hamming(records[name].phash, records[f"{source}.jpg"].phash))
    distinct = [
        hamming(records[a].phash, records[b].phash)
        for a, b in itertools.combinations(sorted(records), 2)
        if truth[a][0] != truth[b][0]
        and truth[a][1] in ("original", "distinct")
        and truth[b][1] in ("original", "distinct")
    ]
    results["hash_bits_to_original"] = {
        k: {"min": int(min(v)), "median": float(np.median(v)), "max": int(max(v))} for k, v in sorted(by_kind.items())
    }
    results["hash_bits_distinct"] = {
        "min": int(min(distinct)),
        "p1": float(np.percentile(distinct, 1)),
        "median": float(np.median(distinct)),
    }
    lib.close()
    return results


def scale(work: Path, sizes: list[int], dim: int = 512, seed: int = 0) -> list[dict[str, object]]:
    from index.catalog import Catalog, sqlite_url
    from index.records import Embedded, FileStat, ImageMeta
    from retrieval.search.duplicates import DuplicateConfig, find_duplicates

    rows = []
    for n in sizes:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((max(10, n // 100), dim)).astype(np.float32)
        vectors = centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
        phashes = rng.integers(0, 2**63, n, dtype=np.int64)
        copies = rng.choice(n, n // 50, replace=False)  # 2% near copies of another row
        for row in copies:
            other = int(rng.integers(0, n))
            vectors[row] = vectors[other] + 0.05 * rng.standard_normal(dim)
            phashes[row] = phashes[other] ^ (1 << int(rng.integers(0, 63)))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        path = work / f"scale-{n}.sqlite"
        path.unlink(missing_ok=True)
        catalog = Catalog(sqlite_url(str(path)))
        t0 = time.perf_counter()
        for start in range(0, n, 5000):
            batch = [
                Embedded(
                    FileStat(f"/synthetic/{i:07d}.jpg", 1000 + i, i),
                    f"h{i}",
                    ImageMeta(4000, 3000, "JPEG", phash=int(phashes[i])),
                    vectors[i].astype("<f4").tobytes(),
                )
                for i in range(start, min(n, start + 5000))
            ]
            catalog.apply(embedded=batch)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = find_duplicates(catalog, dim, DuplicateConfig())
        seconds = time.perf_counter() - t0
        catalog.close()
        rows.append({"images": n, "seconds": seconds, "groups": len(report.groups), "catalog_write_s": write_s})
        print(f"  {n:>7} images: {seconds:7.1f} s, {len(report.groups)} groups", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/xmr-dups"))
    parser.add_argument("--sizes", default="10000,100000", help="synthetic library sizes to time (comma-separated)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    env = environment()
    print(environment_line(env), flush=True)
    payload: dict[str, object] = {"environment": env}
    if not args.skip_quality:
        from retrieval.models.encoder import load_encoder
        from retrieval.models.specs import ModelSpec

        result = quality(args.work / "quality", load_encoder(ModelSpec("ViT-B-32", "random"), "cpu"))
        payload["quality"] = result
        for label, tiers in result.items():
            if isinstance(tiers, dict) and "near" in tiers:
                print(f"\n{label} ({tiers['seconds']:.2f} s)")
                print(markdown_table(
                    ["tier", "precision", "recall", "true pairs", "predicted pairs"],
                    [[t, f"{v['precision']:.3f}", f"{v['recall']:.3f}", v["true_pairs"], v["predicted_pairs"]] for t, v in tiers.items() if t != "seconds"],
                ))  # fmt: skip
        print("\nnear tier by --near bits (exact + near only):")
        for label, v in result["near_bits_sweep"].items():
            print(f"  {label}: precision {v['precision']:.3f} recall {v['recall']:.3f}")
        print("hash bits to the original:", result["hash_bits_to_original"])
        print("hash bits between distinct photos:", result["hash_bits_distinct"])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        print("\nfind_duplicates on synthetic libraries (exact range search, upper triangle):")
        payload["scale"] = scale(args.work, sizes)
    write_json(args.out, payload)


if __name__ == "__main__":
    main()
