"""What people expect of a command-line tool: -h, --version, defaults and choices in help,
no Python type names, -v/-q, completion, and --model on every command that opens a library."""

from __future__ import annotations

import logging
import re
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from xmr_cli import options

COMMANDS = [
    "index",
    "search",
    "add-texts",
    "remove-texts",
    "info",
    "failures",
    "serve",
    "train",
    "eval",
    "train-reranker",
    "watch",
    "duplicates",
]
LIBRARY_COMMANDS = {
    "index": ["PHOTOS"],
    "search": ["a dog"],
    "add-texts": ["TEXTS"],
    "remove-texts": ["TEXTS"],
    "info": [],
    "failures": [],
    "serve": [],
    "duplicates": [],
}
TYPE_NAMES = re.compile(r"<(?:list\[|bool|int|str|float|path|Path|text|integer)|INTEGER|TEXT\b|FLOAT|BOOLEAN|x>=|x<=")


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli.app, [*args, "-h"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_values_not_python_types_and_describes_every_option(command: str) -> None:
    text = _help(command)
    assert (
        _help(command) == CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"}).output
    )  # -h == --help
    assert TYPE_NAMES.findall(text) == [], text
    import typer.main

    group = typer.main.get_command(cli.app)
    undescribed = [p.name for p in group.commands[command].params if not getattr(p, "help", None)]  # type: ignore[attr-defined]
    assert undescribed == []


def test_help_shows_defaults_and_choices() -> None:
    search = _help("search")
    assert "-k, --top N" in search and "[default: 10]" in search
    assert "--device <auto|cpu|cuda|mps>" in search and "[default: auto]" in search
    assert "XMR_LIBRARY" in search and "$XDG_DATA_HOME/xmr/default" in search
    assert "--index-kind <auto|exact|ivf|sq8|ivfpq|ondisk>" in _help("index")
    assert "--fusion <cross-attention|" in _help("train-reranker")
    assert "--groups <shapes-world>" in _help("eval")
    assert "--texts" in search and "WORDS" in search and "[WORDS]..." in search


def test_usage_lines_say_which_arguments_take_several_values() -> None:
    usage = {c: _help(c).splitlines()[0] for c in ("index", "search", "add-texts", "watch", "export-model")}
    assert usage == {
        "index": "Usage: xmr index [OPTIONS] PATH...",
        "search": "Usage: xmr search [OPTIONS] [WORDS]...",
        "add-texts": "Usage: xmr add-texts [OPTIONS] FILE...",
        "watch": "Usage: xmr watch [OPTIONS] PATH...",
        "export-model": "Usage: xmr export-model [OPTIONS] MODEL",
    }
    missing = CliRunner().invoke(cli.app, ["index"], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "Usage: xmr index [OPTIONS] PATH..." in missing.output


def test_choices_in_help_follow_the_registries() -> None:
    from retrieval.rerank.heads import list_heads
    from retrieval.training.evaluate import list_groupings

    assert sorted(typing.get_args(options.Fusion)) == sorted(list_heads())
    groups = typing.get_args(typing.get_args(typing.get_args(options.GroupsOpt)[0])[0])
    assert sorted(groups) == list_groupings()


def test_bad_values_are_refused_in_words() -> None:
    result = CliRunner().invoke(cli.app, ["search", "x", "-k", "0"])
    assert result.exit_code == 2 and "must be at least 1 (got 0)" in result.output
    result = CliRunner().invoke(cli.app, ["search", "x", "--device", "tpu"])
    assert result.exit_code == 2 and "tpu" in result.output


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith(f"xmr {version('xmr')} ")


def test_completion_can_be_installed() -> None:
    root = _help()
    assert "--install-completion" in root and "--show-completion" in root


def test_verbose_shows_the_librarys_info_records_and_quiet_hides_warnings(caplog: pytest.LogCaptureFixture) -> None:
    from xmr_cli.logs import configure, quiet

    for flags, info_shown, warning_shown in (
        ((0, False), False, True),
        ((1, False), True, True),
        ((0, True), False, False),
    ):
        configure(*flags)
        logger = logging.getLogger("retrieval.anything")
        assert logger.isEnabledFor(logging.INFO) is info_shown
        assert logger.isEnabledFor(logging.WARNING) is warning_shown
        assert quiet() is flags[1]
    configure(0, False)


@pytest.mark.parametrize("command", sorted(LIBRARY_COMMANDS))
def test_every_command_that_opens_a_library_takes_and_checks_model(
    command: str, tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path, photos: Path
) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli.app, ["index", str(photos), "--library", str(library), "--model", f"local-dir:{tiny_model_dir}"]
        ).exit_code
        == 0
    )
    texts = tmp_path / "texts.txt"
    texts.write_text("a dog\n")
    args = [str(photos) if a == "PHOTOS" else str(texts) if a == "TEXTS" else a for a in LIBRARY_COMMANDS[command]]
    result = runner.invoke(
        cli.app, [command, *args, "--library", str(library), "--model", f"local-dir:{other_model_dir}"]
    )
    assert result.exit_code == 2, result.output
    words = " ".join(result.output.split())
    assert "was built with" in words and "Leave out --model" in words


def test_minus_v_prints_what_the_library_does(tmp_path: Path, tiny_model_dir: Path, photos: Path) -> None:
    args = ["index", str(photos), "--library", str(tmp_path / "lib"), "--model", f"local-dir:{tiny_model_dir}"]
    loud = CliRunner().invoke(cli.app, ["-v", *args])
    assert loud.exit_code == 0, loud.output
    assert "INFO: plan: 6 to read" in loud.output
    again = CliRunner().invoke(cli.app, ["-q", *args])
    assert again.exit_code == 0 and "INFO" not in again.output
