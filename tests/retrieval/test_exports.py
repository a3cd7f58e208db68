"""``retrieval`` exports its public names lazily; the lists that say so agree, and a search imports little."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys

from tests.helpers.paths import REPO


def _type_checking_imports() -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in retrieval/__init__.py (read with ast)."""
    tree = ast.parse((REPO / "retrieval" / "__init__.py").read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return {a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) and n.module for a in n.names}


def test_exports_all_and_the_type_checking_imports_name_the_same_things() -> None:
    import retrieval

    typed = _type_checking_imports()
    assert len(typed) > 40  # the block was found and read
    assert typed == retrieval.EXPORTS
    assert sorted(retrieval.__all__) == sorted(retrieval.EXPORTS)


def test_every_export_resolves_to_the_object_its_module_defines() -> None:
    import retrieval

    for name, module in retrieval.EXPORTS.items():
        assert getattr(retrieval, name) is getattr(importlib.import_module(module), name), name
    assert set(retrieval.__all__) <= set(dir(retrieval))


def test_an_unknown_name_is_an_attribute_error() -> None:
    import retrieval

    try:
        retrieval.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("retrieval.NoSuchThing did not raise")


def test_importing_the_search_modules_imports_no_indexing_pipeline() -> None:
    """What a command-line search imports (its query parsing, the Library) leaves the indexing
    pipeline, PIL, importlib.metadata and torch unloaded."""
    code = (
        "import json, sys\n"
        "import retrieval.search.query, retrieval.search.query_vector\n"
        "from retrieval import Library\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "retrieval.library" in loaded  # the probe imported what it meant to
    unwanted = {
        "retrieval.ingest.commit",
        "retrieval.ingest.pipeline",
        "retrieval.ingest.scan",
        "retrieval.ingest.ocr",
        "PIL.Image",
        "importlib.metadata",
        "torch",
        "open_clip",
        "sqlalchemy",
    }
    assert sorted(unwanted & loaded) == []
