"""A folder of small photos and sidecar captions that a seeded hand changes between runs.

Every change a user makes to a photo folder: new photos, in-place edits, a timestamp alone
changed, moves and renames (their sidecars going along or left behind), copies, deletions,
sidecar captions written, edited and removed (both ``photo.jpg.txt`` and ``photo.txt``), EXIF
descriptions, and files that are not images. Every file written gets a modification time of
its own, one second after the last (an edit within one clock tick of the last is invisible to
any mtime-based scan, xmr's included; that is not what the crash tests are about).

:func:`expected_captions` and :func:`readable` say what the files on disk say, without xmr.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["PhotoTree", "TreeState", "expected_captions", "readable"]

CAPTIONS = ("a red ball", "sunset", "a cat on a mat", "two dogs", "a blue square", "rain", "a boat", "snow")
FOLDERS = ("", "a", "a/b", "c")
EXTENSIONS = (".jpg", ".png")
_DESCRIPTION = 0x010E  # EXIF ImageDescription
_START_NS = 1_600_000_000 * 10**9


@dataclass(frozen=True)
class TreeState:
    """Every file of the tree: relative path -> (bytes, mtime ns)."""

    files: dict[str, tuple[bytes, int]]


class PhotoTree:
    """A photo folder under ``root`` that :meth:`change` edits like a user would."""

    def __init__(self, root: Path, seed: int, count: int = 8) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock = _START_NS
        self.serial = 0
        rng = np.random.default_rng([seed, 0])
        for _ in range(count):
            self._add(rng)

    # ---- what is there ----------------------------------------------------------------

    def images(self) -> list[Path]:
        """Files with an image extension (readable or not), sorted."""
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix in EXTENSIONS)

    def sidecars(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.txt") if p.is_file())

    def state(self) -> TreeState:
        return TreeState({str(p.relative_to(self.root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in self._files()})

    def restore(self, state: TreeState) -> None:
        """Make the folder hold exactly ``state`` again (same paths, bytes and mtimes)."""
        shutil.rmtree(self.root)
        self.root.mkdir()
        for name, (data, mtime) in state.files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, ns=(mtime, mtime))

    # ---- changes ------------------------------------------------------------------------

    def change(self, seed: int, count: int = 4, first: tuple[str, ...] = ()) -> list[str]:
        """Make the changes named in ``first``, then ``count`` seeded ones; returns what was done.

        Kinds: add, edit, touch, move, strand (a captioned photo moved away from its sidecars),
        retouch (a captioned photo's sidecars removed and its timestamp alone changed), copy,
        delete, caption, uncaption, broken.
        """
        rng = np.random.default_rng([seed, 1])
        kinds = (
            "add",
            "edit",
            "touch",
            "move",
            "strand",
            "copy",
            "delete",
            "caption",
            "caption",
            "uncaption",
            "broken",
        )
        chosen = [*first, *(kinds[int(rng.integers(len(kinds)))] for _ in range(count))]
        return [getattr(self, f"_{kind}")(rng) for kind in chosen]

    def _add(self, rng: np.random.Generator) -> str:
        path = self._new_path(rng)
        self._write_image(path, rng)
        if rng.random() < 0.5:
            self._write_caption(self._sidecar_of(path, rng), rng)
        return f"add {self._rel(path)}"

    def _edit(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        self._write_image(path, rng)
        return f"edit {self._rel(path)}"

    def _touch(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        self._stamp(path)  # same bytes, a new timestamp
        if rng.random() < 0.5:  # and its sidecars changed meanwhile
            self._caption_of(path, rng)
        return f"touch {self._rel(path)}"

    def _move(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        target = self._new_path(rng, path.suffix)
        path.rename(target)
        carried = rng.random() < 0.5
        if carried:  # its sidecars go along (renames keep their mtimes)
            for old, new in zip(_sidecar_paths(path), _sidecar_paths(target)):
                if old.is_file():
                    old.rename(new)
        return f"move {self._rel(path)} -> {self._rel(target)} ({'with' if carried else 'without'} sidecars)"

    def _strand(self, rng: np.random.Generator) -> str:
        path = self._pick(rng, captioned=True)
        if path is None:
            return self._caption(rng)
        target = self._new_path(rng, path.suffix)
        path.rename(target)
        return f"strand {self._rel(path)} -> {self._rel(target)} (its sidecars stay)"

    def _retouch(self, rng: np.random.Generator) -> str:
        path = self._pick(rng, captioned=True)
        if path is None:
            return self._caption(rng)
        for sidecar in _sidecar_paths(path):
            sidecar.unlink(missing_ok=True)
        self._stamp(path)
        return f"retouch {self._rel(path)} (sidecars removed, same bytes, new timestamp)"

    def _copy(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        target = self._new_path(rng, path.suffix)
        shutil.copy2(path, target)  # same bytes, same mtime
        if rng.random() < 0.5:
            for old, new in zip(_sidecar_paths(path), _sidecar_paths(target)):
                if old.is_file():
                    shutil.copy2(old, new)
        return f"copy {self._rel(path)} -> {self._rel(target)}"

    def _delete(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        path.unlink()
        if rng.random() < 0.5:
            for sidecar in _sidecar_paths(path):
                sidecar.unlink(missing_ok=True)
        return f"delete {self._rel(path)}"

    def _caption(self, rng: np.random.Generator) -> str:
        path = self._pick(rng)
        if path is None:
            return self._add(rng)
        return self._caption_of(path, rng)

    def _caption_of(self, path: Path, rng: np.random.Generator) -> str:
        sidecar = self._sidecar_of(path, rng)
        self._write_caption(sidecar, rng)
        return f"caption {self._rel(sidecar)}"

    def _uncaption(self, rng: np.random.Generator) -> str:
        sidecars = self.sidecars()
        if not sidecars:
            return self._caption(rng)
        sidecar = sidecars[int(rng.integers(len(sidecars)))]
        sidecar.unlink()
        return f"uncaption {self._rel(sidecar)}"

    def _broken(self, rng: np.random.Generator) -> str:
        path = self._new_path(rng, ".jpg")
        path.write_bytes(b"not an image %d" % self.serial)
        self._stamp(path)
        return f"broken {self._rel(path)}"

    # ---- files --------------------------------------------------------------------------

    def _files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _pick(self, rng: np.random.Generator, captioned: bool = False) -> Path | None:
        images = [p for p in self.images() if not captioned or any(s.is_file() for s in _sidecar_paths(p))]
        return images[int(rng.integers(len(images)))] if images else None

    def _new_path(self, rng: np.random.Generator, suffix: str = "") -> Path:
        self.serial += 1
        folder = self.root / FOLDERS[int(rng.integers(len(FOLDERS)))]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"p{self.serial:03d}{suffix or EXTENSIONS[int(rng.integers(len(EXTENSIONS)))]}"

    def _sidecar_of(self, path: Path, rng: np.random.Generator) -> Path:
        return _sidecar_paths(path)[int(rng.integers(2))]

    def _stamp(self, path: Path) -> None:
        self.clock += 10**9
        os.utime(path, ns=(self.clock, self.clock))

    def _write_caption(self, sidecar: Path, rng: np.random.Generator) -> None:
        lines = rng.choice(CAPTIONS, size=int(rng.integers(1, 4)), replace=False)
        sidecar.write_text("".join(f"{line}\n" for line in lines))
        self._stamp(sidecar)

    def _write_image(self, path: Path, rng: np.random.Generator) -> None:
        self.serial += 1
        w, h = (int(v) for v in rng.integers(24, 72, 2))
        pixels = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((h // 4 + 1, w // 4 + 1, 1)))[:h, :w]
        image = Image.fromarray(pixels.astype(np.uint8))
        if path.suffix == ".jpg":
            exif = Image.Exif()
            if rng.random() < 0.3:
                exif[_DESCRIPTION] = str(rng.choice(CAPTIONS))
            image.save(path, "JPEG", quality=90, exif=exif)
        else:
            image.save(path, "PNG")
        self._stamp(path)


def _sidecar_paths(path: Path) -> tuple[Path, Path]:
    return Path(f"{path}.txt"), path.with_suffix(".txt")


def readable(path: Path) -> bool:
    """Whether Pillow decodes ``path`` (what the oracle expects xmr to index)."""
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:
        return False


def expected_captions(path: Path) -> list[str]:
    """What the files say ``path``'s captions are: each non-empty line of ``photo.jpg.txt`` then
    ``photo.txt``, then the EXIF description; repeats once, first place kept."""
    lines: list[str] = []
    for sidecar in _sidecar_paths(path):
        if sidecar.is_file():
            lines += [line.strip() for line in sidecar.read_text().splitlines() if line.strip()]
    with Image.open(path) as image:
        description = image.getexif().get(_DESCRIPTION)
    if description and str(description).strip():
        lines.append(str(description).strip())
    return list(dict.fromkeys(lines))
