"""Every error the library raises on purpose is exported from ``retrieval``, cheaply."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers.paths import REPO


def _error_classes() -> dict[str, str]:
    """Class name -> file, for every class named ``*Error`` in the packages (found with ast)."""
    found = {}
    for package in ("retrieval", "index"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    found[node.name] = str(path.relative_to(REPO))
    return found


def test_every_error_class_is_exported_and_subclasses_xmr_error_and_a_builtin() -> None:
    import builtins

    import retrieval

    classes = _error_classes()
    assert len(classes) > 20  # the scan found them
    assert sorted(set(classes) - set(retrieval.__all__)) == []
    for name in set(classes) - {"XmrError"}:  # the base alone is not also a built-in
        error = getattr(retrieval, name)
        assert issubclass(error, retrieval.XmrError), name
        assert any(
            issubclass(error, getattr(builtins, b))
            for b in (
                "ValueError",
                "TypeError",
                "RuntimeError",
                "OSError",
                "LookupError",
                "ImportError",
                "ConnectionError",
            )
        ), name


def test_importing_every_error_imports_no_torch() -> None:
    code = "import sys, retrieval; [getattr(retrieval, n) for n in retrieval.__all__]; print(sorted(m for m in ('torch', 'open_clip', 'faiss', 'fastapi') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
