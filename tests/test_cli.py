"""The CLI through typer's CliRunner: output formats, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from tests.helpers.files import add_broken_files


@pytest.fixture
def run(tmp_path: Path, tiny_model_dir: Path):  # noqa: ANN201
    library = tmp_path / "library"
    runner = CliRunner()

    def _run(*args: str, with_library: bool = True):  # noqa: ANN202
        full = [*args, "--library", str(library)] if with_library else list(args)
        return runner.invoke(cli.app, full)

    _run.library = library  # type: ignore[attr-defined]
    _run.model = f"local-dir:{tiny_model_dir}"  # type: ignore[attr-defined]
    return _run


def test_index_then_search_table_json_and_paths(run, photos: Path) -> None:  # noqa: ANN001
    indexed = run("index", str(photos), "--model", run.model, "--json")
    assert indexed.exit_code == 0, indexed.output
    report = json.loads(indexed.stdout)
    assert (report["added"], report["failed"]) == (6, 0)

    table = run("search", "a man riding a horse", "-k", "3")
    assert table.exit_code == 0, table.output
    assert "rank" in table.stdout and "…" not in table.stdout
    assert len([line for line in table.stdout.splitlines() if str(photos)[:20] in line]) == 3

    lines = run("search", "a man riding a horse", "--top", "4", "--json").stdout.splitlines()
    hits = [json.loads(line) for line in lines]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert {"rank", "score", "id", "path", "width", "height", "captured_at"} <= set(hits[0])
    assert hits[0]["score"] >= hits[-1]["score"]

    paths = run("search", "a man riding a horse", "-k", "4", "--paths").stdout.splitlines()
    assert paths == [h["path"] for h in hits]

    query = next(photos.rglob("coffee.*"))
    by_image = run("search", "--image", str(query), "-k", "1", "--paths")
    assert by_image.exit_code == 0 and by_image.stdout.strip() == str(query)


def test_info_json_counts(run, photos: Path) -> None:  # noqa: ANN001
    add_broken_files(photos, next(photos.rglob("astronaut.jpg")))
    indexed = run("index", str(photos), "--model", run.model)
    assert indexed.exit_code == 0
    assert "failed 4" in indexed.output and "truncated.jpg" in indexed.output
    info = json.loads(run("info", "--json").stdout)
    assert info["images"] == 6 and info["texts"] == 0 and info["failed"] == 4
    assert isinstance(info["images"], int) and info["embed_dim"] == 32 and info["index_kind"] == "exact"
    listed = run("failures", "--json").stdout.splitlines()
    assert len(listed) == 4 and all(json.loads(line)["error"] for line in listed)


def test_exit_1_when_nothing_matches(run, tmp_path: Path, photos: Path) -> None:  # noqa: ANN001
    empty = tmp_path / "empty"
    empty.mkdir()
    first = run("index", str(empty), "--model", run.model)  # a first run that finds nothing makes no library
    assert first.exit_code == 1 and "no library was made" in first.stderr and not run.library.exists()
    assert run("search", "anything").exit_code == 2
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    for path in photos.rglob("*.*"):
        path.unlink()
    assert run("index", str(photos)).exit_code == 0  # every image gone: the library stays, empty
    result = run("search", "anything")
    assert result.exit_code == 1
    assert "no results: the library has no indexed images" in result.stderr


def test_exit_2_on_bad_input(run, photos: Path, tmp_path: Path, other_model_dir: Path) -> None:  # noqa: ANN001
    missing = run("search", "x")
    assert missing.exit_code == 2 and "xmr index" in missing.stderr
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    neither = run("search")
    assert neither.exit_code == 2 and "TEXT" in neither.stderr
    both = run("search", "x", "--image", str(next(photos.rglob("coffee.*"))))
    assert both.exit_code == 0  # a text and an image combine into one query
    assert run("search", "--not", "people").exit_code == 2  # nothing to search for
    assert run("search", "x", "--weight", "2:y").exit_code == 2  # weight names no term
    assert run("search", "x", "--weight", "two:x").exit_code == 2
    assert run("search", "x", "--after", "yesterday").exit_code == 2
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_text("no")
    assert run("search", "--image", str(bad_image)).exit_code == 2
    other = run("search", "x", "--model", f"local-dir:{other_model_dir}")
    assert other.exit_code == 2 and "built with" in other.stderr
    assert run("search", "x", "-k", "0").exit_code == 2  # click's own range check


def test_library_from_environment(run, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("XMR_LIBRARY", str(run.library))
    runner = CliRunner()
    assert runner.invoke(cli.app, ["index", str(photos), "--model", run.model]).exit_code == 0
    assert json.loads(runner.invoke(cli.app, ["info", "--json"]).stdout)["images"] == 6


def test_paths_with_brackets_survive_every_output(run, photos: Path) -> None:  # noqa: ANN001
    odd = photos / "[bold]trip [2024]"
    odd.mkdir()
    from PIL import Image

    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        image.transpose(Image.Transpose.ROTATE_90).save(odd / "cat [1].jpg")  # pixels of its own
    (odd / "broken [x].jpg").write_text("no")
    indexed = run("index", str(photos), "--model", run.model)
    assert "broken [x].jpg" in indexed.stderr
    target = str(odd / "cat [1].jpg")
    assert run("search", "--image", target, "-k", "1", "--paths").stdout.strip() == target
    assert json.loads(run("search", "--image", target, "-k", "1", "--json").stdout)["path"] == target
    assert "cat [1].jpg" in run("search", "--image", target, "-k", "1").stdout


def test_query_algebra_filters_and_paging_from_the_command_line(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    reference = str(next(photos.rglob("coffee.*")))
    args = ["search", "a cup", "a table", "--not", "people", "--image", reference, "--weight", f"20:{reference}"]
    combined = [json.loads(line) for line in run(*args, "-k", "6", "--json").stdout.splitlines()]
    assert len(combined) == 6 and combined[0]["path"] == reference  # the weighted image dominates
    pages = [
        json.loads(line)
        for o in ("0", "2", "4")
        for line in run(*args, "-k", "2", "--offset", o, "--json").stdout.splitlines()
    ]
    assert [h["path"] for h in pages] == [h["path"] for h in combined] and [h["rank"] for h in pages] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    nested = run("search", "a cup", "--under", str(photos / "nested"), "--ext", "JPG,png", "--paths").stdout.split()
    assert nested and all(p.startswith(str(photos / "nested") + "/") for p in nested)
    none = run("search", "a cup", "--after", "2999-01-01")
    assert none.exit_code == 1 and "no indexed image was taken on or after 2999-01-01" in none.stderr


def test_bad_groups_value_is_a_usage_error_not_an_internal_one(run, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "pairs").mkdir()
    result = run(
        "eval", str(tmp_path / "pairs"), "--model", str(tiny_model_dir), "--groups", "nope", with_library=False
    )
    assert result.exit_code == 2 and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("env", "marker"),
    [({"TERM": "xterm-kitty"}, "\x1b_Gf=100"), ({"TERM_PROGRAM": "iTerm.app"}, "\x1b]1337;File=inline=1"), ({}, None)],
)
def test_preview_draws_thumbnails_only_where_the_terminal_can(
    run, photos: Path, monkeypatch: pytest.MonkeyPatch, env: dict, marker
) -> None:  # noqa: ANN001
    import base64
    import io

    from PIL import Image

    for name in ("TERM", "TERM_PROGRAM", "LC_TERMINAL", "KITTY_WINDOW_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    result = run("search", "a cat", "-k", "2", "--preview")
    assert result.exit_code == 0
    if marker is None:
        assert "\x1b" not in result.stdout and "rank" in result.stdout  # the plain table
        return
    assert result.stdout.count(marker) == 2
    payload = result.stdout.split(marker, 1)[1].split(";" if marker.startswith("\x1b_G") else ":", 1)[1]
    payload = payload.split("\x1b")[0].split("\x07")[0]
    with Image.open(io.BytesIO(base64.b64decode(payload + "=" * (-len(payload) % 4)))) as thumb:
        assert max(thumb.size) <= 160  # a real, small PNG


def test_known_queries_import_no_torch(run, photos: Path) -> None:  # noqa: ANN001
    """A repeated text and an indexed, unchanged image need no model: no torch, open_clip or torchvision."""
    import os
    import subprocess
    import sys

    assert run("index", str(photos), "--model", run.model).exit_code == 0
    first = run("search", "a man riding a horse", "-k", "3", "--paths")
    assert first.exit_code == 0, first.output
    query = next(photos.rglob("coffee.*"))
    by_image = run("search", "--image", str(query), "-k", "2", "--paths")
    probe = (
        "import sys, cli\n"
        f"for args in (['a man riding a horse', '-k', '3'], ['--image', {str(query)!r}, '-k', '2']):\n"
        "    try:\n"
        f"        cli.app(['search', *args, '--paths', '--library', {str(run.library)!r}])\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, done.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'torchvision', 'open_clip') if m in sys.modules))\n"
    )
    repo = Path(cli.__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *paths, heavy = done.stdout.splitlines()
    assert paths == first.stdout.splitlines() + by_image.stdout.splitlines()
    assert by_image.stdout.splitlines()[0] == str(query)
    assert heavy == "heavy: []"


def test_search_shows_a_spinner_on_terminals_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import time

    from rich.console import Console

    import xmr_cli.progress as progress

    for terminal, expected in ((True, True), (False, False)):
        stream = io.StringIO()
        monkeypatch.setattr(progress, "err", Console(file=stream, force_terminal=terminal))
        with progress.working("searching"):
            time.sleep(0.3)  # long enough for the spinner to draw a frame
        assert ("searching" in stream.getvalue()) is expected


def test_names_with_control_characters_are_quoted_and_print0_keeps_them_exact(run, photos: Path) -> None:  # noqa: ANN001
    from PIL import Image

    sneaky = photos / "x\x1b]0;pwned\x07\nfake line.jpg"
    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        image.transpose(Image.Transpose.ROTATE_180).save(sneaky)
    (photos / "bad\x1b[2J.jpg").write_text("no")
    indexed = run("index", str(photos), "--model", run.model)
    assert "\x1b" not in indexed.stderr and "$'" in indexed.stderr  # the failure's name, quoted
    shown = run("search", "--image", str(sneaky), "-k", "1", "--paths").stdout
    assert shown == f"$'{photos}/x\\E]0;pwned\\x07\\nfake line.jpg'\n"
    table = run("search", "--image", str(sneaky), "-k", "1").stdout
    assert "\x1b" not in table and "\\nfake line.jpg'" in table
    exact = run("search", "--image", str(sneaky), "-k", "2", "--print0").stdout_bytes
    assert exact.split(b"\0")[0] == str(sneaky).encode() and exact.endswith(b"\0")
    listed = run("failures").stdout
    assert "\x1b" not in listed and listed.startswith(f"$'{photos}/bad\\E[2J.jpg'\t")
    assert run("failures", "--print0").stdout_bytes == f"{photos}/bad\x1b[2J.jpg\0".encode()


def test_output_options_that_would_be_ignored_are_refused_or_explained(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    for args, fragment in (
        (["--json", "--paths"], "--json and --paths are different outputs"),
        (["--texts", "--paths"], "--paths lists image files"),
        (["--preview", "--json"], "--preview draws thumbnails"),
        (["--json", "--print0"], "--json and --print0"),
    ):
        refused = run("search", "a cat", *args)
        assert refused.exit_code == 2 and fragment in " ".join(refused.stderr.split()), args
    plain = run("search", "a cat", "-k", "1", "--preview")  # not a kitty/iTerm2 terminal here
    assert plain.exit_code == 0 and "this terminal cannot show images" in plain.stderr
    assert run("failures").stderr.strip() == "no failures: every file found was read."
    info = run("info").stdout
    assert "kB" in info and "bytes_on_disk" in info  # sizes as people read them
    assert isinstance(json.loads(run("info", "--json").stdout)["bytes_on_disk"], int)


def test_a_piped_table_keeps_each_path_on_one_line(run, photos: Path) -> None:  # noqa: ANN001
    deep = photos / ("a folder with a rather long name " * 4).strip() / "and another level of folders"
    deep.mkdir(parents=True)
    (deep / "the photo with the long path.jpg").write_bytes(next(photos.rglob("coffee.*")).read_bytes())
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    rows = run("search", "--image", str(deep / "the photo with the long path.jpg"), "-k", "3").stdout.splitlines()
    assert rows[0].split() == ["rank", "score", "path"] and len(rows) == 4
    assert rows[1].endswith(str(deep / "the photo with the long path.jpg")) and len(rows[1]) > 200


def test_a_missing_folder_exits_2_and_a_first_run_makes_no_library(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    typo = tmp_path / "photoz"
    alone = run("index", str(typo), "--model", run.model)
    assert alone.exit_code == 2 and "no such file or folder" in alone.stderr and not run.library.exists()
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    both = run("index", str(photos), str(typo), "--json")
    assert both.exit_code == 2 and json.loads(both.stdout)["missing"] == [str(typo)]
    gone = run("index", str(typo))
    assert gone.exit_code == 2 and json.loads(run("info", "--json").stdout)["images"] == 6  # its images stay


def test_index_and_add_texts_name_each_stage_into_a_pipe(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    indexed = run("index", str(photos), "--model", run.model)
    lines = indexed.stderr.splitlines()
    assert lines[:4] == ["scanning…", "comparing with the library…", "loading the model…", "embedding…"]
    assert any(line.startswith("embedding: 6/6 images") for line in lines)
    captions = tmp_path / "captions.txt"
    captions.write_text("a cat\na cup of coffee\n")
    added = run("add-texts", str(captions))
    assert "loading the model…" in added.stderr and "embedding: 2/2 texts" in added.stderr
    assert "added 2" in added.stderr


def test_eval_says_what_binding_means(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import xmr_cli.output as output

    stream = io.StringIO()
    monkeypatch.setattr(output, "out", Console(file=stream, width=200))
    recall = {"R@1": 0.5, "R@5": 1.0, "R@10": 1.0}
    output.print_metrics({"count": 4, "t2i": recall, "i2t": recall, "binding": 0.75}, as_json=False)
    assert "binding: how often" in stream.getvalue() and "0.750" in stream.getvalue()
    stream.truncate(0)
    output.print_metrics({"count": 4, "t2i": recall, "i2t": recall}, as_json=False)
    assert "binding:" not in stream.getvalue()  # no negatives, no binding, nothing to explain


PROBE_REFUSALS = """
import sys, cli
from xmr_cli import errors
codes = []
for args in (
    ["search", "--image", "nope.jpg", "--library", LIBRARY],
    ["search", "a cat", "--reranker", "./nope", "--library", LIBRARY],
    ["train", PAIRS, "--out", OUT, "--arch", "xmr-tiny"],
    ["index", "./photoz", "--library", LIBRARY + "-new"],
):
    try:
        cli.app(args)
    except SystemExit as done:
        codes.append(done.code)
print("codes:", codes)
print("heavy:", sorted(m for m in ("torch", "open_clip") if m in sys.modules))
"""


def test_refusals_come_before_any_model_loads(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import os
    import subprocess
    import sys

    from retrieval.training import shapes_world

    assert run("index", str(photos), "--model", run.model).exit_code == 0
    pairs = shapes_world.generate(tmp_path / "pairs", count=4, seed=0, size=32, split="train")
    probe = (
        PROBE_REFUSALS.replace("LIBRARY", repr(str(run.library)))
        .replace("PAIRS", repr(str(pairs)))
        .replace("OUT", repr(str(tmp_path / "out")))
    )
    repo = Path(cli.__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "300"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.splitlines()[-2:] == ["codes: [2, 2, 2, 2]", "heavy: []"], done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    for fragment in (
        "cannot use nope.jpg as a query image: no such file",
        "no such folder: ./nope",
        "unknown architecture 'xmr-tiny'",
        "photoz: no such file or folder",
    ):
        assert fragment in said


def test_train_into_a_pipe_prints_what_it_does(run, tmp_path: Path) -> None:  # noqa: ANN001
    from retrieval.training import shapes_world
    from tests.helpers.tiny_model import TINY_CFG

    pairs = shapes_world.generate(tmp_path / "pairs", count=16, seed=0, size=32, split="train")
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps(TINY_CFG))
    args = ["train", str(pairs), "--out", str(tmp_path / "m"), "--arch", str(arch), "--batch-size", "8"]
    done = run(*args, "--steps", "3", "--warmup", "5", with_library=False)
    assert done.exit_code == 0, done.output
    said = done.stderr.splitlines()
    assert said[:2] == ["loading the pairs", "building the model"]
    assert "WARNING: warm-up (5 steps) is as long as the whole run (3 steps)" in done.stderr  # logged
    assert any(line.startswith("training: step 3/3, loss ") for line in said)


def test_index_with_ocr_then_search_words_contains_mode_and_sort(run, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("rapidocr_onnxruntime", reason="needs the ocr extra")
    from tests.helpers.text_images import render_words

    folder = tmp_path / "scans"
    folder.mkdir()
    render_words("coffee", "RECEIPT 42.50", folder / "a.jpg")
    render_words("chelsea", "EXIT", folder / "b.jpg")
    indexed = run("index", str(folder), "--model", run.model, "--ocr", "--ocr-workers", "1", "--json")
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["ocr_read"] == 2

    hits = [json.loads(line) for line in run("search", "42.50", "--mode", "keyword", "--json").stdout.splitlines()]
    assert [Path(h["path"]).name for h in hits] == ["a.jpg"]
    assert hits[0]["match"]["source"] == "ocr" and len(hits[0]["match"]["box"]) == 8
    contained = run("search", "a photo", "--contains", "exit", "-k", "10", "--paths")
    assert contained.exit_code == 0 and contained.stdout.splitlines() == [str(folder / "b.jpg")]
    nothing = run("search", "a photo", "--contains", "nowhere")
    assert nothing.exit_code == 1 and "no results" in nothing.output
    dated = run("search", "a photo", "--sort", "-date", "--paths").stdout.splitlines()
    assert sorted(dated) == sorted(str(p) for p in folder.glob("*.jpg"))
    bad = run("search", "a photo", "--mode", "fuzzy")
    assert bad.exit_code == 2 and "fuzzy" in bad.output


def test_the_console_entry_point_ends_a_search_with_every_line_written(run, photos: Path) -> None:  # noqa: ANN001
    """``main()`` ends a search without interpreter teardown (xmr_cli/process.py): its output and
    exit codes are what typer's runner sees; a reader that leaves early is no error (141, no words)."""
    import os
    import subprocess
    import sys

    assert run("index", str(photos), "--model", run.model).exit_code == 0
    repo = Path(cli.__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    main = [sys.executable, "-c", "import sys; from cli import main; sys.argv[0] = 'xmr'; main()"]
    lib = ["--library", str(run.library)]
    for args, code in (
        (["search", "a man riding a horse", "-k", "4"], 0),
        (["search", "a man riding a horse", "--json"], 0),
        (["search", "a cat", "--ext", "tiff"], 1),
    ):
        expected = run(*args)
        done = subprocess.run([*main, *args, *lib], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout) == (code, expected.stdout), done.stderr
    closed = subprocess.Popen(
        [*main, "search", "a man riding a horse", *lib],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert closed.stdout is not None and closed.stderr is not None
    closed.stdout.close()  # the reader leaves before the first hit is written
    assert closed.wait(timeout=120) == 141
    assert closed.stderr.read() == b""
