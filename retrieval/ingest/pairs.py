"""Image-caption pairs for training and evaluation: the pairs folder and Karpathy JSON.

Pairs folder (the Shapes World contract, also the format users give for their photos)::

    pairs.jsonl        {"image": "images/000000.png", "caption": "...", "negatives": ["..."]}
    images/...         image paths are relative to the folder

Karpathy split JSON (COCO, Flickr30k): ``{"images": [{"filename", "filepath"?, "split",
"sentences": [{"raw": ...}]}]}`` with the images under a root folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import PairsFormatError

PAIRS_FILE = "pairs.jsonl"


@dataclass(frozen=True)
class PairSet:
    """Captions linked to images; an image may have several captions.

    ``caption_image[j]`` is the index into ``images`` of caption ``j``'s image;
    ``negatives[j]`` are captions known to be false for that image (may be empty).
    """

    images: tuple[Path, ...]  # absolute image paths, each once
    captions: tuple[str, ...]  # one per line
    caption_image: tuple[int, ...]  # image index of each caption
    negatives: tuple[tuple[str, ...], ...]  # hard negatives of each caption's line

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def has_negatives(self) -> bool:
        return any(self.negatives)

    def subset(self, keep: list[int]) -> PairSet:
        """The pairs of caption indices ``keep`` (images renumbered, unused ones dropped)."""
        used = sorted({self.caption_image[j] for j in keep})
        renumber = {old: new for new, old in enumerate(used)}
        return PairSet(
            images=tuple(self.images[i] for i in used),
            captions=tuple(self.captions[j] for j in keep),
            caption_image=tuple(renumber[self.caption_image[j]] for j in keep),
            negatives=tuple(self.negatives[j] for j in keep),
        )


def load_pairs(
    source: str | Path, split: str = "test", images_root: str | Path | None = None, check_files: bool = True
) -> PairSet:
    """Read a pairs folder, a ``pairs.jsonl`` file, or a Karpathy split JSON.

    Args:
        source: folder holding pairs.jsonl, the jsonl file itself, or a Karpathy ``.json``.
        split: which Karpathy split to read ("train", "val", "test", "restval").
        images_root: where Karpathy images live (default: the JSON's folder).
        check_files: fail if an image file is missing.

    Raises:
        PairsFormatError: unreadable file, broken JSON line, missing field, empty caption,
            or a missing image, with file and line named.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / PAIRS_FILE
    if not path.is_file():
        raise PairsFormatError(
            f"{path} does not exist; give a folder with {PAIRS_FILE}, the jsonl file, or a Karpathy JSON."
        )
    if path.suffix == ".json":
        return _load_karpathy(path, split, Path(images_root).expanduser() if images_root else path.parent, check_files)
    return _load_jsonl(path, check_files)


def _load_jsonl(path: Path, check_files: bool) -> PairSet:
    index: dict[Path, int] = {}
    captions: list[str] = []
    owners: list[int] = []
    negatives: list[tuple[str, ...]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            image, caption, negs = _parse_line(line, path, number)
            image_path = (path.parent / image).resolve()
            if check_files and image_path not in index and not image_path.is_file():
                raise PairsFormatError(f"{path}:{number}: image {image} does not exist (looked for {image_path}).")
            owners.append(index.setdefault(image_path, len(index)))
            captions.append(caption)
            negatives.append(negs)
    if not captions:
        raise PairsFormatError(f"{path} holds no pairs.")
    return PairSet(tuple(index), tuple(captions), tuple(owners), tuple(negatives))


def _parse_line(line: str, path: Path, number: int) -> tuple[str, str, tuple[str, ...]]:
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise PairsFormatError(f"{where}: not valid JSON ({exc.args[0] if exc.args else exc}).") from exc
    if not isinstance(row, dict):
        raise PairsFormatError(f"{where}: expected a JSON object with image and caption.")
    image, caption, negs = row.get("image"), row.get("caption"), row.get("negatives", [])
    if not isinstance(image, str) or not image.strip():
        raise PairsFormatError(f'{where}: missing or empty "image".')
    if not isinstance(caption, str) or not caption.strip():
        raise PairsFormatError(f'{where}: missing or empty "caption".')
    if not isinstance(negs, list) or not all(isinstance(n, str) and n.strip() for n in negs):
        raise PairsFormatError(f'{where}: "negatives" must be a list of non-empty captions.')
    return image, caption.strip(), tuple(n.strip() for n in negs)


def _load_karpathy(path: Path, split: str, root: Path, check_files: bool) -> PairSet:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for e in data["images"] if e.get("split") == split]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PairsFormatError(f"{path} is not a Karpathy split JSON ({exc}).") from exc
    if not entries:
        raise PairsFormatError(f"{path} has no images in split {split!r} (try --split train, val or test).")
    images: list[Path] = []
    captions: list[str] = []
    owners: list[int] = []
    for number, entry in enumerate(entries):
        image_path = (root / entry.get("filepath", "") / entry["filename"]).resolve()
        if check_files and not image_path.is_file():
            raise PairsFormatError(
                f"{path}: image {number} of split {split!r} ({image_path}) does not exist; pass --images ROOT."
            )
        sentences = [s.get("raw", "").strip() for s in entry.get("sentences", [])]
        for sentence in filter(None, sentences):
            captions.append(sentence)
            owners.append(len(images))
        images.append(image_path)
    return PairSet(tuple(images), tuple(captions), tuple(owners), tuple(() for _ in captions))
