"""The Library API end to end with the tiny model: search, incremental indexing, bad files."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.files import add_broken_files


def _ids_by_name(lib) -> dict[str, int]:  # noqa: ANN001
    return {Path(r.path).name: r.id for r in lib.catalog.files_under([os.sep]).values()}


def test_image_query_returns_identical_image_first(open_library, photos: Path) -> None:
    lib = open_library()
    report = lib.index([photos])
    assert report.added == 6 and report.failed == 0
    for query in sorted(photos.rglob("*.*")):
        hits = lib.search(image=query, k=3)
        assert hits[0].path == str(query)
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert [h.rank for h in hits] == [1, 2, 3]
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_text_search_ranks_every_image_by_cosine(open_library, photos: Path, tiny_encoder) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    hits = lib.search(text="a cat on a table", k=50)
    assert len(hits) == 6
    # Oracle: cosine of the text vector with each image's stored vector.
    query = tiny_encoder.encode_texts(["a cat on a table"])[0]
    stored = lib.catalog.vectors_for([h.id for h in hits])
    expected = sorted((float(np.frombuffer(stored[h.id], "<f4") @ query), h.id) for h in hits)[::-1]
    assert [h.id for h in hits] == [i for _, i in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-5)


def test_metadata_is_recorded(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    (hit,) = [h for h in lib.search(text="anything", k=10) if h.path.endswith("astronaut.jpg")]
    assert (hit.width, hit.height, hit.format) == (512, 512, "JPEG")
    record = lib.catalog.image_by_path(hit.path)
    assert record is not None and record.size == Path(hit.path).stat().st_size and len(record.content_hash) == 32


def test_unchanged_files_are_skipped(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    again = lib.index([photos])
    assert (again.added, again.updated, again.unchanged, again.encoded) == (0, 0, 6, 0)


def test_changed_file_is_reembedded(open_library, photos: Path, photo_source: Path) -> None:
    lib = open_library()
    lib.index([photos])
    before = _ids_by_name(lib)
    target = next(photos.rglob("coffee.*"))
    old_vector = lib.catalog.vectors_for([before[target.name]])[before[target.name]]
    target.write_bytes(next(photo_source.glob("rocket.*")).read_bytes() + b"\0")  # new, unique bytes
    report = lib.index([photos])
    assert (report.updated, report.added, report.encoded) == (1, 0, 1)
    assert _ids_by_name(lib) == before
    new_vector = lib.catalog.vectors_for([before[target.name]])[before[target.name]]
    assert new_vector != old_vector
    # Same pixels as rocket now: both score ~1 and tie for first place.
    top = {h.path: h.score for h in lib.search(image=target, k=2)}
    assert top[str(target)] == pytest.approx(1.0, abs=1e-4)


def test_touched_file_keeps_vector_without_encoding(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    target = next(photos.rglob("camera.*"))
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    report = lib.index([photos])
    assert (report.updated, report.encoded, report.unchanged) == (0, 0, 6)
    assert lib.catalog.image_by_path(str(target)).mtime_ns == 1_000_000_000


def test_deleted_file_is_removed_from_catalog_and_index(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    victim = next(photos.rglob("chelsea.*"))
    victim_id = _ids_by_name(lib)[victim.name]
    victim.unlink()
    report = lib.index([photos])
    assert report.removed == 1
    assert victim_id not in lib.images.index.ids()
    assert lib.images.agrees_with_catalog()
    assert all(h.path != str(victim) for h in lib.search(text="cat", k=10))


def test_moved_file_keeps_its_vector_without_encoding(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    before = _ids_by_name(lib)
    source = next(photos.rglob("rocket.*"))
    target = photos / "nested" / "deeper" / "renamed-rocket.jpg"
    target.parent.mkdir()
    source.rename(target)
    report = lib.index([photos])
    assert (report.moved, report.removed, report.added, report.encoded) == (1, 0, 0, 0)
    assert lib.catalog.image_by_path(str(target)).id == before[source.name]
    assert lib.search(image=target, k=1)[0].path == str(target)


def test_copied_file_reuses_vector_without_encoding(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    source = next(photos.rglob("coins.*"))
    shutil.copy2(source, photos / f"copy-of-{source.name}")
    report = lib.index([photos])
    assert (report.added, report.encoded) == (1, 0)
    hits = lib.search(image=source, k=2)
    assert [h.score for h in hits] == pytest.approx([1.0, 1.0], abs=1e-4)


def test_indexing_one_root_keeps_other_roots(open_library, photos: Path, tmp_path: Path, photo_source: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(photo_source, other)
    lib = open_library()
    lib.index([photos, other])
    report = lib.index([photos])
    assert report.removed == 0 and lib.info().images == 12


def test_broken_files_are_reported_and_skipped(open_library, photos: Path) -> None:
    broken = add_broken_files(photos, next(photos.rglob("astronaut.jpg")))
    lib = open_library()
    report = lib.index([photos])
    assert (report.added, report.failed) == (6, 4)
    reasons = dict(report.failures)
    assert "truncated" in reasons[str(broken["truncated"])]
    assert "empty" in reasons[str(broken["empty"])]
    assert "not an image" in reasons[str(broken["text"])]
    assert "megapixel" in reasons[str(broken["huge"])]
    assert dict(lib.failures()) == reasons
    info = lib.info()
    assert (info.images, info.failed, info.vectors) == (6, 4, 6)
    # Unchanged broken files are not retried, changed ones are; a fixed file gets indexed.
    assert lib.index([photos]).failed == 0
    shutil.copyfile(next(photos.rglob("coffee.*")), broken["truncated"])
    fixed = lib.index([photos])
    assert (fixed.updated, fixed.failed) == (1, 0)
    assert lib.images.agrees_with_catalog()


def test_file_that_becomes_unreadable_loses_its_vector(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    target = next(photos.rglob("camera.*"))
    target.write_bytes(b"garbage" * 10)
    report = lib.index([photos])
    assert report.failed == 1
    assert lib.catalog.image_by_path(str(target)).id not in lib.images.index.ids()
    assert lib.images.agrees_with_catalog()


def test_missing_root_is_reported_not_fatal(open_library, photos: Path, tmp_path: Path) -> None:
    lib = open_library()
    report = lib.index([photos, tmp_path / "nope"])
    assert report.added == 6
    assert any("no such file" in why for _, why in report.failures)


def test_reopened_library_needs_no_model(open_library, photos: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from retrieval import Library

    lib = open_library(model=f"local-dir:{tiny_model_dir}")
    lib.index([photos])
    expected = [h.path for h in lib.search(text="coffee", k=6)]
    lib.close()
    with Library.open(tmp_path / "library", device="cpu") as again:
        assert again.identity.spec == f"local-dir:{tiny_model_dir}"
        assert [h.path for h in again.search(text="coffee", k=6)] == expected


def test_other_model_is_refused_with_both_names(
    open_library, photos: Path, tmp_path: Path, other_model_dir: Path
) -> None:
    from retrieval import Library, ModelMismatchError

    open_library().index([photos])
    with pytest.raises(ModelMismatchError) as caught:
        Library.open(tmp_path / "library", model=f"local-dir:{other_model_dir}")
    message = str(caught.value)
    assert "tiny-0" in message and "tiny-1" in message and "--library" in message


def test_weights_changed_in_place_are_refused(
    open_library, photos: Path, tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path
) -> None:
    # Retraining into the same folder must not mix two models' vectors in one library.
    from retrieval import Library, ModelMismatchError

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    open_library(model=f"local-dir:{folder}").index([photos])
    for weights in other_model_dir.glob("*.safetensors"):
        shutil.copy(weights, folder / weights.name)
    with Library.open(tmp_path / "library") as lib:
        with pytest.raises(ModelMismatchError, match="(?s)changed since it was built.*Restore"):
            lib.search(text="a new text", k=3)
        assert lib.info().images == 6


def test_a_library_that_never_got_a_vector_takes_another_model(
    tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path, photos: Path
) -> None:
    # A first run that failed before its first batch (bad weights) must not pin the model.
    from retrieval import Library, ModelMismatchError

    Library.open(tmp_path / "library", model=f"local-dir:{tiny_model_dir}").close()
    with Library.open(tmp_path / "library", model=f"local-dir:{other_model_dir}") as lib:
        assert lib.identity.spec == f"local-dir:{other_model_dir}"
        lib.index([photos])
    with pytest.raises(ModelMismatchError):  # now it holds vectors: refused
        Library.open(tmp_path / "library", model=f"local-dir:{tiny_model_dir}")


def test_a_damaged_weights_file_is_a_model_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    from retrieval import ModelNotFoundError
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelNotFoundError, match="(?s)cannot load.*damaged"):
        load_encoder(ModelSpec(f"local-dir:{folder}"), device="cpu")


def test_unknown_or_missing_devices_are_typed_errors() -> None:
    import torch

    from retrieval.errors import DeviceError
    from retrieval.models.encoder import pick_device

    with pytest.raises(DeviceError, match="must be one of"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cpu"):
            pick_device("cuda:0")
    assert pick_device("cpu") == "cpu"


def test_api_arguments_of_the_wrong_kind_are_query_errors(
    open_library, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime

    from PIL import Image

    from retrieval import FilterError, ImageFilter, QueryError, Term

    lib = open_library()
    assert lib.index(str(photos)).added == 6  # one folder as a string, not its characters
    bad = [
        dict(text=123),
        dict(image=b"\xff\xd8"),
        dict(image=Image.new("RGB", (0, 0))),
        dict(text="x", k="5"),
        dict(text="x", k=1.5),
        dict(text="x", terms=["red"]),
        dict(text="x", terms=Term(text="red")),
    ]
    for kwargs in bad:
        with pytest.raises(QueryError):
            lib.search(**kwargs)
    with pytest.raises(QueryError, match="at least 1"):
        lib.search_vector(lib.embed_text("x"), k=0)
    with pytest.raises(QueryError, match="ImageFilter"):
        lib.search_vector(lib.embed_text("x"), where=None)
    # A lone string, a relative folder and "PNG" mean what they say.
    nested = photos / "nested"
    monkeypatch.chdir(photos)
    expected = {h.path for h in lib.search(text="x", k=10, where=ImageFilter(under=(str(nested),)))}
    assert {h.path for h in lib.search(text="x", k=10, where=ImageFilter(under=str(nested)))} == expected
    assert {h.path for h in lib.search(text="x", k=10, where=ImageFilter(under=("nested",)))} == expected
    assert all(h.path.endswith(".png") for h in lib.search(text="x", k=10, where=ImageFilter(extensions="PNG")))
    with pytest.raises(FilterError, match="datetime"):
        ImageFilter(after="2024-01-01")
    with pytest.raises(FilterError, match="outside the dates"):
        ImageFilter(after=datetime(1, 1, 1))
    with pytest.raises(FilterError, match="earlier"):
        ImageFilter(after=datetime(2024, 1, 1), before=datetime(2023, 1, 1))
    # "~" in an example image's path is the home folder, as in Library.open and index.
    monkeypatch.setenv("HOME", str(photos))
    coffee = next(photos.rglob("coffee.*"))
    assert lib.search(image=f"~/{coffee.relative_to(photos)}", k=1)[0].path == str(coffee)


def test_missing_library_is_not_created_for_search(tmp_path: Path) -> None:
    from retrieval import Library, LibraryNotFoundError

    with pytest.raises(LibraryNotFoundError, match="xmr index"):
        Library.open(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()


def test_bad_queries_raise_query_error(open_library, photos: Path, tmp_path: Path) -> None:
    from retrieval import QueryError

    lib = open_library()
    lib.index([photos])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    for kwargs in ({}, {"text": "a", "image": not_image}, {"text": "   "}, {"image": not_image}, {"text": "x", "k": 0}):
        with pytest.raises(QueryError):
            lib.search(**kwargs)


def test_pil_image_query(open_library, photos: Path) -> None:
    from PIL import Image

    lib = open_library()
    lib.index([photos])
    path = next(photos.rglob("chelsea.*"))
    with Image.open(path) as image:
        assert lib.search(image=image.convert("RGBA"), k=1)[0].path == str(path)


def test_threads_search_concurrently_while_index_grows(
    open_library, photos: Path, tmp_path: Path, photo_source: Path, tiny_encoder
) -> None:  # noqa: ANN001
    from retrieval import Library

    lib = open_library()
    lib.index([photos])
    writer = Library.open(tmp_path / "library", model=tiny_encoder)
    errors: list[BaseException] = []
    seen: list[int] = []

    def searcher() -> None:
        try:
            for _ in range(15):
                seen.append(len(lib.search(text="a photo", k=50)))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    extra = tmp_path / "extra"
    shutil.copytree(photo_source, extra)
    for source in list(extra.iterdir()):  # distinct bytes so they are embedded, not copied
        with open(source, "ab") as handle:
            handle.write(b"\0")
    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    writer.index([extra])
    for thread in threads:
        thread.join()
    writer.close()
    assert not errors
    assert min(seen) >= 6 and max(seen) <= 12
    assert len(lib.search(text="a photo", k=50)) == 12  # the reader picked up the new images


def test_hidden_files_and_folders_are_skipped(open_library, photos: Path) -> None:
    source = next(photos.rglob("coffee.*"))
    (photos / ".thumbnails").mkdir()
    shutil.copy2(source, photos / ".thumbnails" / "thumb.jpg")
    (photos / "._coffee.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    report = open_library().index([photos])
    assert (report.added, report.failed) == (6, 0)


def test_names_that_are_not_utf8_are_reported_and_skipped(open_library, photos: Path) -> None:
    # A latin-1 name (from an old archive) reaches Python as lone surrogates, which the
    # catalog cannot store: it is listed with the fix; the rest of the run is unaffected.
    source = next(photos.rglob("coffee.*"))
    shutil.copy2(source, os.path.join(os.fsencode(photos), b"caf\xe9.jpg"))
    folder = os.path.join(os.fsencode(photos), b"f\xeate")
    os.mkdir(folder)
    shutil.copy2(source, os.path.join(folder, b"x.jpg"))
    lib = open_library()
    report = lib.index([photos])
    assert (report.added, report.failed) == (6, 2)  # failed counts every failure listed, walk errors too
    reasons = dict(report.failures)
    assert set(reasons) == {f"{photos}/caf\\xe9.jpg", f"{photos}/f\\xeate"}
    assert all("not valid UTF-8" in why and "rename" in why for why in reasons.values())
    again = lib.index([photos, os.fsdecode(folder)])  # named as a root, too
    assert again.unchanged == 6 and f"{photos}/f\\xeate" in dict(again.failures)


def test_a_missing_folder_keeps_its_images(open_library, photos: Path, tmp_path: Path) -> None:
    # An unplugged drive (or a typo) is not "every photo under it was deleted".
    lib = open_library()
    lib.index([photos])
    unplugged = tmp_path / "unplugged"
    photos.rename(unplugged)
    report = lib.index([photos])
    assert (report.removed, lib.info().images) == (0, 6)
    assert "kept" in dict(report.failures)[str(photos)]
    unplugged.rename(photos)
    assert lib.index([photos]).unchanged == 6


def test_one_bad_entry_does_not_hide_the_rest_of_its_folder(open_library, photos: Path) -> None:
    (photos / "loop_a.jpg").symlink_to("loop_b.jpg")
    (photos / "loop_b.jpg").symlink_to("loop_a.jpg")
    (photos / "dangling.jpg").symlink_to("nowhere.jpg")
    report = open_library().index([photos])
    assert report.added == 6
    reasons = dict(report.failures)
    assert (
        "symbolic links" in reasons[str(photos / "loop_a.jpg")] and "missing" in reasons[str(photos / "dangling.jpg")]
    )


def test_a_file_replaced_by_a_folder_or_fifo_leaves_the_library(open_library, photos: Path) -> None:
    lib = open_library()
    lib.index([photos])
    coffee, rocket = next(photos.rglob("coffee.*")), next(photos.rglob("rocket.*"))
    coffee.unlink()
    coffee.mkdir()
    rocket.unlink()
    os.mkfifo(rocket)
    report = lib.index([photos])
    assert (report.removed, lib.info().images) == (2, 4)
    assert {h.path for h in lib.search(text="anything", k=10)}.isdisjoint({str(coffee), str(rocket)})


def test_an_emptied_catalog_is_refused_not_reconciled_to_nothing(open_library, photos: Path, tmp_path: Path) -> None:
    from retrieval import CorruptFileError

    lib = open_library()
    lib.index([photos])
    lib.close()
    (tmp_path / "library" / "catalog.sqlite").write_bytes(b"")  # truncated by a disk or a user
    for name in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / "library" / name).unlink(missing_ok=True)
    snapshot = (tmp_path / "library" / "images.vec").read_bytes()
    with pytest.raises(CorruptFileError, match="(?s)empty.*6 vectors.*backup"):
        open_library()
    assert (tmp_path / "library" / "images.vec").read_bytes() == snapshot


def test_a_catalog_without_its_manifest_is_not_adopted(
    open_library, photos: Path, tmp_path: Path, other_model_dir: Path
) -> None:
    # The manifest says which model made the vectors; without it another model's vectors
    # would be mixed in. The catalog is left as it was.
    from retrieval import CatalogMismatchError

    lib = open_library()
    lib.index([photos])
    lib.close()
    (tmp_path / "library" / "manifest.json").unlink()
    before = (tmp_path / "library" / "catalog.sqlite").read_bytes()
    with pytest.raises(CatalogMismatchError, match="(?s)no manifest.json.*backup"):
        open_library(model=f"local-dir:{other_model_dir}")
    assert (tmp_path / "library" / "catalog.sqlite").read_bytes() == before
    assert not (tmp_path / "library" / "manifest.json").exists()


def test_without_faiss_every_open_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import cli
    from retrieval import Library, MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'xmr\[cpu\]'"):
        Library.open(tmp_path / "library")
    result = CliRunner().invoke(cli.app, ["info", "--library", str(tmp_path / "library")])
    assert result.exit_code == 2 and "xmr[cpu]" in result.stderr


def test_a_repeated_text_query_is_answered_without_loading_the_model(
    open_library, photos: Path, tiny_encoder, tmp_path: Path
) -> None:  # noqa: ANN001
    from retrieval import Library

    lib = open_library()
    lib.index([photos])
    first = lib.search(text="a cat on a table", k=6)
    lib.close()
    with Library.open(tmp_path / "library") as again:  # as a second `xmr search` would
        page_two = again.search(text="a cat on a table", k=3, offset=3)
        assert not again._encoders  # the vector came from queries.sqlite
        assert [(h.id, h.score) for h in page_two] == [(h.id, h.score) for h in first[3:]]
        cached = again.query_cache.get("a cat on a table")
        assert np.array_equal(
            cached, tiny_encoder.encode_texts(["a cat on a table"])[0]
        )  # oracle: the encoder's own vector
        again.search(text="a dog", k=1)  # a new text loads the model, and is remembered
        assert again._encoders and again.query_cache.get("a dog") is not None


def test_a_query_cache_of_another_model_is_never_used(open_library, photos: Path, tiny_encoder) -> None:  # noqa: ANN001
    from index.query_cache import QueryVectorCache

    lib = open_library()
    lib.index([photos])
    dim = lib.identity.embed_dim
    QueryVectorCache(lib.layout.query_cache, "some other model", dim).put(
        "a cat on a table", -tiny_encoder.encode_texts(["a cat on a table"])[0]
    )
    lib.known.cache = QueryVectorCache(
        lib.layout.query_cache, lib.query_cache.model, dim
    )  # a fresh process's view of the file
    hits = lib.search(text="a cat on a table", k=6)
    query = tiny_encoder.encode_texts(["a cat on a table"])[0]
    stored = lib.catalog.vectors_for([h.id for h in hits])
    assert [h.score for h in hits] == pytest.approx(
        [float(np.frombuffer(stored[h.id], "<f4") @ query) for h in hits], abs=1e-5
    )
    assert hits[0].score >= hits[-1].score


def test_an_indexed_unchanged_image_is_queried_with_its_stored_vector(
    open_library, photos: Path, tiny_encoder, tmp_path: Path
) -> None:  # noqa: ANN001
    from retrieval import Library

    lib = open_library()
    lib.index([photos])
    query = next(photos.rglob("coffee.*"))
    lib.close()
    with Library.open(tmp_path / "library") as again:
        hits = again.search(image=query, k=6)
        assert not again._encoders  # no model: the catalog had the vector
        stored = again.catalog.vectors_for([h.id for h in hits])
        mine = np.frombuffer(stored[hits[0].id], "<f4")
        assert hits[0].path == str(query) and hits[0].score == pytest.approx(1.0, abs=1e-6)
        assert [h.score for h in hits] == pytest.approx(
            [float(np.frombuffer(stored[h.id], "<f4") @ mine) for h in hits], abs=1e-5
        )
        # Oracle: the stored vector is what the encoder gives for the file.
        from retrieval.search.query_vector import embed_image

        assert float(embed_image(lambda: tiny_encoder, query) @ mine) > 0.9999

        os.utime(query, ns=(query.stat().st_atime_ns, query.stat().st_mtime_ns + 10**9))  # changed since indexing
        assert again.search(image=query, k=1)[0].path == str(query)
        assert again._encoders  # re-embedded from the file, not the stale row


def test_another_model_cannot_take_a_library_during_its_first_run(
    tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path
) -> None:
    # `xmr index --model A` holds the write lock before its first batch is committed; a
    # `xmr search --model B` meanwhile must not rebind the library to B under A's feet.
    from index.layout import LibraryLayout
    from index.lock import WriteLock
    from index.manifest import read_manifest
    from retrieval import Library, ModelMismatchError

    root = tmp_path / "library"
    Library.open(root, model=f"local-dir:{tiny_model_dir}").close()
    with WriteLock(LibraryLayout(root).lock):  # the first run, in "another process" (its own lock fd)
        with pytest.raises(ModelMismatchError, match="Another xmr process is writing"):
            Library.open(root, model=f"local-dir:{other_model_dir}")
    manifest = read_manifest(root)
    assert manifest is not None and manifest.model.spec == f"local-dir:{tiny_model_dir}"


def test_a_run_refuses_to_write_once_another_model_took_the_library(
    tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path, photos: Path
) -> None:
    # The rebind raced ahead of the first run's lock: the run must notice and write nothing.
    from retrieval import Library, ModelMismatchError

    root = tmp_path / "library"
    first = Library.open(root, model=f"local-dir:{tiny_model_dir}")
    Library.open(root, model=f"local-dir:{other_model_dir}").close()  # never written: rebound to B
    with pytest.raises(ModelMismatchError, match="given to .* by another xmr process"):
        first.index([photos])
    assert first.catalog.counts()["images"] == 0
    first.close()


def test_every_write_removes_the_temp_files_of_killed_writers_only(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from index.atomic import writer_tag

    lib = open_library()
    lib.index([photos])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=60)
    texts = tmp_path / "texts.txt"
    texts.write_text("a cat\n")
    for write in (lambda: lib.index([photos]), lambda: lib.add_texts(texts), lambda: lib.remove_texts(texts)):
        dead = lib.layout.root / f".images.vec.{writer_tag(ended.pid)}.k2j3.tmp"  # a snapshot write killed midway
        live = lib.layout.root / f".index.json.{writer_tag()}.h4g5.tmp"  # another writer at work (this process)
        for temp in (dead, live):
            temp.write_bytes(b"half")
        write()
        assert not dead.exists() and live.exists()
        live.unlink()
