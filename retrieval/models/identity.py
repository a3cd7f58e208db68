"""A library's model identity on open: read the manifest (or write a new one) and refuse another model.

The manifest remembers which encoder made the library's vectors, so later opens need no
model and a different one is refused before any vector is mixed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from index.errors import CatalogMismatchError, CorruptFileError, LibraryNotFoundError
from index.layout import LibraryLayout
from index.manifest import Manifest, ModelIdentity, read_manifest, write_manifest
from retrieval.errors import ModelMismatchError
from retrieval.models.runtime import model_identity
from retrieval.models.specs import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelSpec

if TYPE_CHECKING:
    from retrieval.models.encoder import Encoder

__all__ = ["check_same_model", "model_spec", "open_manifest", "rebind_empty", "save_new"]


def open_manifest(
    layout: LibraryLayout,
    model: str | ModelSpec | Encoder | None,
    encoder: Encoder | None,
    pretrained: str | None,
    catalog_url: str,
    create: bool,
) -> tuple[Manifest, bool]:
    """The library's manifest, and whether it is new (not yet written: see :func:`save_new`).

    Args:
        layout: where the library lives.
        model: the model asked for (``None``: the library's own), as given to ``Library.open``.
        encoder: ``model`` when it is a ready encoder, else None (its identity is used).
        pretrained: tag or weights file going with an architecture name.
        catalog_url: the catalog URL asked for ("": the library's own, or SQLite for a new one).
        create: make a new manifest when there is none.

    Raises:
        LibraryNotFoundError: no library there and ``create`` is False.
        CorruptFileError: a library is there but its manifest is missing (and ``create`` is False).
        ModelMismatchError: the model asked for is not the one the library was built with.
        CatalogMismatchError: the catalog asked for is not the one the library was built with.
    """
    manifest = read_manifest(layout.root)
    if manifest is None:
        if not create and (layout.catalog_file.exists() or layout.image_vectors.exists()):
            raise CorruptFileError(
                f"{layout.root} holds a library ({layout.catalog_file.name}, {layout.image_vectors.name}) but its "
                f"{layout.manifest.name}, which says which model made its vectors, is missing. Restore that file "
                "from a backup (the library is otherwise intact; do not index into it with another model), "
                "or index into a new library directory."
            )
        if not create:
            raise LibraryNotFoundError(
                f"no xmr library at {layout.root}. Index some photos first:  xmr index PATH"
                " (or pass --library DIR / set XMR_LIBRARY to use another library)."
            )
        return Manifest(model=_identity(model, encoder, pretrained), catalog_url=catalog_url), True
    if model is not None:
        check_same_model(manifest.model, _identity(model, encoder, pretrained), layout.root)
    if catalog_url and not _same_catalog(catalog_url, layout.catalog_url(manifest.catalog_url)):
        from index.catalog import shown_url

        raise CatalogMismatchError(
            f"the library at {layout.root} keeps its catalog in {shown_url(layout.catalog_url(manifest.catalog_url))}, "
            f"not {shown_url(catalog_url)}. Leave out --catalog-url to use the library's own catalog, "
            "or index into another library directory (--library DIR) to use that database."
        )
    return manifest, False


def rebind_empty(
    layout: LibraryLayout, model: str | ModelSpec | Encoder | None, encoder: Encoder | None, pretrained: str | None
) -> None:
    """A new manifest for ``model`` in a library that holds no vector yet (its first run
    failed, e.g. on bad weights), so a retry with the right model is not refused."""
    old = read_manifest(layout.root)
    assert old is not None
    write_manifest(layout.root, Manifest(model=_identity(model, encoder, pretrained), catalog_url=old.catalog_url))


def save_new(layout: LibraryLayout, manifest: Manifest) -> None:
    """Write a new library's manifest (after its catalog opened: a bad URL leaves no library)."""
    write_manifest(layout.root, manifest)


def _identity(
    model: str | ModelSpec | Encoder | None, encoder: Encoder | None, pretrained: str | None
) -> ModelIdentity:
    return encoder.identity if encoder is not None else model_identity(model_spec(model, pretrained))  # type: ignore[arg-type]


def model_spec(model: str | ModelSpec | None, pretrained: str | None) -> ModelSpec:
    """The spec for ``model`` (default: ViT-B-32 with its LAION weights) and ``pretrained``."""
    if isinstance(model, ModelSpec):
        return model
    name = model or DEFAULT_MODEL
    if pretrained is None:
        pretrained = DEFAULT_PRETRAINED if name == DEFAULT_MODEL else ""
    return ModelSpec(name, pretrained)


def check_same_model(built: ModelIdentity, asked: ModelIdentity, root: Path) -> None:
    """Raise ModelMismatchError unless ``asked`` produces the same vectors as ``built``."""
    if not built.same_model(asked):
        raise ModelMismatchError(
            f"the library at {root} was built with {built.label()}, not {asked.label()}. "
            "Leave out --model to use the library's own model, or index into another library "
            f"(--library DIR) to use {asked.label()}."
        )


def _same_catalog(given: str, kept: str) -> bool:
    """Whether two catalog URLs name one database (SQLAlchemy parses them only when they differ as text)."""
    if given == kept:
        return True
    from index.catalog import same_database

    return same_database(given, kept)
