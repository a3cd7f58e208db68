"""Names made safe for one terminal line, and byte sizes as people read them."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from xmr_cli.escape import human_bytes, shown


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/photos/plain name [1].jpg", "/photos/plain name [1].jpg"),  # as it is: no quoting needed
        ("/p/a\nb.jpg", "$'/p/a\\nb.jpg'"),
        ("/p/\x1b]0;pwned\x07.jpg", "$'/p/\\E]0;pwned\\x07.jpg'"),
        ("/p/\u202egpj.exe", "$'/p/\\u202egpj.exe'"),  # right-to-left override
        ("/p/caf\udce9.jpg", "$'/p/caf\\xe9.jpg'"),  # a latin-1 byte kept by surrogateescape
        ("/p/it's\\\t.jpg", "$'/p/it\\'s\\\\\\t.jpg'"),
        ("/p/\x9b31m.jpg", "$'/p/\\u009b31m.jpg'"),  # C1 CSI
    ],
)
def test_shown_quotes_only_what_a_terminal_would_act_on(name: str, expected: str) -> None:
    assert shown(name) == expected


def test_bash_reads_a_quoted_name_back_as_the_name() -> None:
    name = "/p/x\x1b[31m\nit's\t\\.jpg"
    echoed = subprocess.run(["bash", "-c", f"printf %s {shown(name)}"], capture_output=True, check=True).stdout
    assert echoed.decode() == name


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 kB"),
        (4_200, "4.2 kB"),
        (38_100_000, "38.1 MB"),
        (1_270_000_000, "1.27 GB"),
    ],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


SNEAKY = "/p/x\x1b]0;pwned\x07\nfake line.jpg"
QUOTED = "$'/p/x\\E]0;pwned\\x07\\nfake line.jpg'"


def _capture(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stdout and stderr consoles of xmr_cli.output writing into one buffer (not a terminal)."""
    from rich.console import Console

    import xmr_cli.output as output

    stream = io.StringIO()
    for name in ("out", "err"):
        monkeypatch.setattr(output, name, Console(file=stream, width=300, force_terminal=False))
    return stream


def test_duplicates_watch_and_left_out_lists_quote_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval.results import DuplicateGroup, DuplicateMember, DuplicateReport, IndexReport
    from xmr_cli.output import print_duplicates, print_report, print_watch_batch, print_watching

    stream = _capture(monkeypatch)
    members = (DuplicateMember(1, SNEAKY, "keeper", 1.0, 0), DuplicateMember(2, "/p/b.jpg", "exact", 1.0, 0))
    print_duplicates(DuplicateReport((DuplicateGroup("exact", members, "most pixels"),), 2, 0, 0.1), as_json=False)
    report = IndexReport(
        added=0,
        updated=0,
        moved=0,
        removed=0,
        unchanged=0,
        failed=1,
        failures=((SNEAKY, "cannot read"),),
        encoded=0,
        seconds=0.1,
        excluded_removed=(SNEAKY,),
        links_skipped=((SNEAKY, "not followed"),),
        raw_skipped=(SNEAKY,),
    )
    print_watching([Path(SNEAKY)])
    print_watch_batch(report, [SNEAKY], as_json=False)
    print_report(report, as_json=False)
    said = stream.getvalue()
    assert "\x1b" not in said and "\x07" not in said and "\nfake line" not in said
    assert said.count(QUOTED) >= 8  # keeper line, its row, watching, batch failure, report failure, lists


def test_error_messages_quoting_a_name_reach_the_terminal_defanged(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    import xmr_cli.errors as errors
    from retrieval import QueryError

    stream = io.StringIO()
    from rich.console import Console

    monkeypatch.setattr(errors, "err", Console(file=stream, width=300, force_terminal=False))

    @errors.friendly_errors
    def command() -> None:
        raise QueryError(f"cannot use {SNEAKY} as a query image: no such file\nsecond line of the message")

    with pytest.raises(typer.Exit):
        command()
    with pytest.raises(typer.Exit):
        errors.fail(f"{SNEAKY}: no such file or folder")
    said = stream.getvalue()
    assert "\x1b" not in said and "\x07" not in said
    assert said.count("/p/x\\E]0;pwned\\x07") == 2 and "no such file\nsecond line" in said
