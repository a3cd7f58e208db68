"""The CLI with videos: index options, the table's ``path @ H:MM:SS``, JSON start and end, --media, info."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from tests.helpers.videos import PHONE, scikit_photos, write_slideshow

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")


def test_videos_through_the_cli(tmp_path: Path, tiny_model_dir: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photos = list(scikit_photos().items())
    write_slideshow(media / "film.mp4", photos[:3], (4.0, 5.0, 4.0), gop=PHONE)
    photos[4][1].save(media / "rocket.jpg")
    runner = CliRunner()

    def run(*args: str, library: str = "library"):  # noqa: ANN202
        return runner.invoke(cli.app, [*args, "--library", str(tmp_path / library)])

    model = f"local-dir:{tiny_model_dir}"
    indexed = run("index", str(media), "--model", model, "--json")
    assert indexed.exit_code == 0, indexed.output
    report = json.loads(indexed.stdout)
    assert (report["added"], report["videos"], report["skipped"]) == (2, 1, [])
    denser = run("index", str(media), "--model", model, "--video-interval", "0.5", "--json", library="dense")
    assert json.loads(denser.stdout)["moments"] > report["moments"]  # samples every 0.5 s, not 2 s

    table = run("search", "a photo", "--media", "videos", "-k", "5")
    assert table.exit_code == 0, table.output
    (line,) = [line for line in table.stdout.splitlines() if "film.mp4" in line]
    assert re.search(r"film\.mp4 @ 0:00:\d\d", line)
    hits = [json.loads(x) for x in run("search", "a photo", "--json").stdout.splitlines()]
    assert sorted(h["media"] for h in hits) == ["photo", "video"]
    video = next(h for h in hits if h["media"] == "video")
    assert 0 <= video["start"] < video["end"] <= 13.05 and video["path"] == str(media / "film.mp4")
    every = [json.loads(x) for x in run("search", "a photo", "--json", "--each-moment", "-k", "50").stdout.splitlines()]
    assert len(every) == report["moments"] + 1
    photos_only = run("search", "a photo", "--media", "photos", "--paths").stdout.split()
    assert photos_only == [str(media / "rocket.jpg")]
    bad = run("search", "a photo", "--media", "films")
    assert bad.exit_code == 2 and "'films' is not one of 'all', 'photos', 'videos'" in bad.output
    never = run("index", str(media), "--video-interval", "0")
    assert never.exit_code == 2 and "must be a number above 0" in never.output
    named = [json.loads(x) for x in run("search", "film", "--mode", "keyword", "--json").stdout.splitlines()]
    assert [(h["path"], h["media"], h["match"]["source"]) for h in named] == [
        (str(media / "film.mp4"), "video", "filename")
    ]
    mixed = run("search", "film", "--mode", "hybrid", "--each-moment")
    assert mixed.exit_code == 2 and "--mode semantic" in mixed.output
    query = tmp_path / "wide.png"  # a photo of another shape than the film: its moments score it framed too
    photos[0][1].save(query)
    framed = [
        json.loads(x) for x in run("search", "--image", str(query), "--json", "--each-moment").stdout.splitlines()
    ]
    plain = run("search", "--image", str(query), "--json", "--each-moment", "--no-video-framing")
    assert plain.exit_code == 0, plain.output
    plain_scores = {(h["path"], h.get("start")): h["score"] for h in map(json.loads, plain.stdout.splitlines())}
    framed_scores = {(h["path"], h.get("start")): h["score"] for h in framed}
    assert framed_scores.keys() == plain_scores.keys()
    assert all(framed_scores[key] >= plain_scores[key] - 1e-6 for key in plain_scores)
    assert any(framed_scores[key] > plain_scores[key] + 1e-6 for key in plain_scores if key[1] is not None)
    assert framed_scores[(str(media / "rocket.jpg"), None)] == pytest.approx(
        plain_scores[(str(media / "rocket.jpg"), None)]
    )
    info = json.loads(run("info", "--json").stdout)
    assert (info["images"], info["videos"], info["moments"]) == (1, 1, report["moments"])
