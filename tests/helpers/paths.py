"""Where the repository is, for tests that start a subprocess with its packages on the path."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # tests/helpers/paths.py -> the repository root
