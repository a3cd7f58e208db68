"""Names made safe for one terminal line, and byte sizes as people read them."""

from __future__ import annotations

import subprocess

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
