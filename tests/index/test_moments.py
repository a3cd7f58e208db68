"""Videos and moments in the catalog: ids shared with photos, the store following, filters, the upgrade."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from index.catalog import CATALOG_SCHEMA, IMAGES, Catalog, sqlite_url
from index.quick_catalog import QuickCatalog
from index.records import FAILED, INDEXED, PARTIAL, ImageFilter, Moved
from index.store import IndexConfig, VectorStore
from index.video_records import (
    AddMoments,
    CopyVideo,
    FailVideo,
    FinishVideo,
    NewMoment,
    StartVideo,
    TouchVideo,
    VideoMeta,
)
from tests.helpers.old_catalogs import downgrade_to_1
from tests.helpers.oracles import embedded, stat, unit_rows

DIM = 8
META = VideoMeta(96, 64, "MP4", 12.0, "h264", 30.0, 0, datetime(2023, 7, 14, 11, 30))


def _moments(rng: np.random.Generator, times: list[float]) -> tuple[NewMoment, ...]:
    vectors = unit_rows(rng, len(times) - 1, DIM)
    return tuple(NewMoment(a, b, np.asarray(v, "<f4").tobytes()) for a, b, v in zip(times, times[1:], vectors))


def _index_video(
    catalog: Catalog, rng: np.random.Generator, path: str, identity: str = "v1:film", size: int = 1000
) -> None:
    catalog.apply_videos(
        [StartVideo(stat(path, size), identity, META, 2.0), AddMoments(path, _moments(rng, [0, 2, 4, 6]), 6.0)]
    )
    catalog.apply_videos([AddMoments(path, _moments(rng, [6, 9, 12]), 12.0), FinishVideo(path, 12.0)])


def test_moment_and_photo_ids_never_collide_nor_return(catalog: Catalog, rng: np.random.Generator) -> None:
    catalog.apply(embedded=[embedded("/p/a.jpg", unit_rows(rng, 1, DIM)[0])])
    _index_video(catalog, rng, "/p/film.mp4")
    catalog.apply(embedded=[embedded("/p/b.jpg", unit_rows(rng, 1, DIM)[0])])
    video = catalog.image_by_path("/p/film.mp4")
    assert video is not None and video.kind == "video" and video.state == INDEXED
    moments = catalog.moments_of(video.id)
    assert [(m.start, m.end) for m in moments] == [(0, 2), (2, 4), (4, 6), (6, 9), (9, 12)]
    photos = [catalog.image_by_path(p).id for p in ("/p/a.jpg", "/p/b.jpg")]  # type: ignore[union-attr]
    ids = [m.id for m in moments]
    assert len(set(ids + photos + [video.id])) == len(ids) + 3  # one id space, no collision
    assert catalog.vector_ids(IMAGES).tolist() == sorted(ids + photos)  # the video row itself holds no vector
    assert max(ids + photos + [video.id]) == len(ids) + 3  # dense: the vector layer's lookup tables stay small
    old = set(ids)
    catalog.apply_videos([StartVideo(stat("/p/film.mp4", 2000, 2), "v1:edited", META, 2.0)])  # edited: read again
    assert catalog.moments_of(video.id) == [] and set(catalog.deleted_since(IMAGES, 0).tolist()) >= old
    catalog.apply_videos([AddMoments("/p/film.mp4", _moments(rng, [0, 5, 12]), 12.0)])
    assert min(m.id for m in catalog.moments_of(video.id)) > max(old | set(photos))  # never reused
    assert catalog.counts() == {"images": 2, "failed": 0, "texts": 0, "videos": 1, "moments": 2}
    assert catalog.image_by_path("/p/film.mp4").state == PARTIAL  # type: ignore[union-attr]


def test_the_vector_store_follows_moments_through_copies_failures_and_removals(
    catalog: Catalog, rng: np.random.Generator, tmp_path: Path
) -> None:
    store = VectorStore(tmp_path / "images.idx", catalog, IMAGES, DIM, IndexConfig())
    store.load()
    _index_video(catalog, rng, "/p/film.mp4")
    catalog.apply(embedded=[embedded("/p/a.jpg", unit_rows(rng, 1, DIM)[0])])
    source = catalog.image_by_path("/p/film.mp4")
    catalog.apply_videos([CopyVideo(stat("/q/copy.mp4", 1000, 5), source.id)])  # type: ignore[union-attr]
    copy = catalog.image_by_path("/q/copy.mp4")
    assert copy is not None and copy.state == INDEXED and copy.content_hash == "v1:film"
    originals, copies = catalog.moments_of(source.id), catalog.moments_of(copy.id)  # type: ignore[union-attr]
    assert [(m.start, m.end) for m in copies] == [(m.start, m.end) for m in originals]
    stored = catalog.vectors_for([m.id for m in originals + copies])
    assert [stored[m.id] for m in copies] == [stored[m.id] for m in originals]  # same vectors, own ids
    store.refresh()
    assert store.agrees_with_catalog() and len(store.index) == 11
    catalog.apply_videos([TouchVideo(stat("/q/copy.mp4", 1000, 9))])
    assert catalog.image_by_path("/q/copy.mp4").mtime_ns == 9  # type: ignore[union-attr]
    catalog.apply_videos([FailVideo(stat("/p/film.mp4", 1000, 7), "no frame could be decoded", "v1:film")])
    failed = catalog.image_by_path("/p/film.mp4")
    assert failed.state == FAILED and catalog.moments_of(failed.id) == [] and catalog.video(failed.id) is None  # type: ignore[union-attr]
    store.refresh()
    assert store.agrees_with_catalog() and len(store.index) == 6
    catalog.apply(removed=[copy.id])  # a vanished video takes its moments along
    store.persist()
    assert store.agrees_with_catalog() and len(store.index) == 1
    reopened = VectorStore(tmp_path / "images.idx", catalog, IMAGES, DIM, IndexConfig())
    reopened.load()
    assert reopened.agrees_with_catalog()


def test_filters_pick_moments_by_their_video(catalog: Catalog, rng: np.random.Generator) -> None:
    catalog.apply(
        embedded=[embedded("/p/a.jpg", unit_rows(rng, 1, DIM)[0]), embedded("/q/b.png", unit_rows(rng, 1, DIM)[0])]
    )
    _index_video(catalog, rng, "/p/film.mp4")
    catalog.apply_videos(
        [
            StartVideo(stat("/q/clip.MOV"), "v1:clip", VideoMeta(8, 8, "MOV", 3.0, "hevc", 30.0, 90), 2.0),
            AddMoments("/q/clip.MOV", _moments(rng, [0, 3]), 3.0),
        ]
    )
    photos = {catalog.image_by_path(p).id for p in ("/p/a.jpg", "/q/b.png")}  # type: ignore[union-attr]
    film = {m.id for m in catalog.moments_of(catalog.image_by_path("/p/film.mp4").id)}  # type: ignore[union-attr]
    clip = {m.id for m in catalog.moments_of(catalog.image_by_path("/q/clip.MOV").id)}  # type: ignore[union-attr]

    def pick(**kw: object) -> set[int]:
        return set(catalog.select_images(ImageFilter(**kw)).tolist())  # type: ignore[arg-type]

    assert pick() == photos | film | clip
    assert pick(media="photos") == photos and pick(media="videos") == film | clip
    assert pick(under=("/p",)) == {catalog.image_by_path("/p/a.jpg").id} | film  # type: ignore[union-attr]
    assert pick(extensions=("mov", "png")) == clip | {catalog.image_by_path("/q/b.png").id}  # type: ignore[union-attr]
    assert pick(after=datetime(2023, 7, 14), before=datetime(2023, 7, 15)) == film  # the film's capture date
    assert pick(media="videos", under=("/q",)) == clip


def test_moments_are_grouped_by_their_videos_frame_size_on_both_catalogs(
    catalog: Catalog, rng: np.random.Generator
) -> None:
    """What image queries frame themselves by (retrieval.search.framing): the full catalog and, on
    SQLite, the quick one (no SQLAlchemy) give the same groups."""
    assert catalog.moment_frames() == {}
    catalog.apply(embedded=[embedded("/p/a.jpg", unit_rows(rng, 1, DIM)[0])])
    _index_video(catalog, rng, "/p/film.mp4")
    _index_video(catalog, rng, "/p/film2.mp4", identity="v1:film2")  # the same size: one group
    portrait = VideoMeta(64, 96, "MOV", 3.0, "hevc", 30.0, 90)  # upright size, after the rotation
    catalog.apply_videos(
        [
            StartVideo(stat("/q/clip.MOV"), "v1:clip", portrait, 2.0),
            AddMoments("/q/clip.MOV", _moments(rng, [0, 1, 3]), 3.0),
        ]
    )
    want = {}
    for path in ("/p/film.mp4", "/p/film2.mp4", "/q/clip.MOV"):
        video = catalog.image_by_path(path)
        assert video is not None and video.width and video.height
        ids = want.setdefault((video.width, video.height), [])
        ids += [m.id for m in catalog.moments_of(video.id)]
    frames = catalog.moment_frames()
    assert sorted(frames) == [(64, 96), (96, 64)]
    assert {size: ids.tolist() for size, ids in frames.items()} == {size: sorted(ids) for size, ids in want.items()}
    assert all(ids.dtype == np.int64 for ids in frames.values())
    if catalog.url.startswith("sqlite:///"):
        quick = QuickCatalog.attempt(catalog.url)
        assert quick is not None
        got = quick.moment_frames()
        assert {s: i.tolist() for s, i in got.items()} == {s: i.tolist() for s, i in frames.items()}
        assert quick._full is None  # noqa: SLF001  (answered without SQLAlchemy)
        quick.close()


def test_a_video_file_has_a_keyword_document_by_its_own_id(catalog: Catalog, rng: np.random.Generator) -> None:
    """Its names are keyword data like a photo's: written when it is started, finished, copied or
    moved, gone when it fails or leaves; ``contains`` picks its moments, ``select_files`` its row."""
    catalog.apply(embedded=[embedded("/p/Japan trip/a.jpg", unit_rows(rng, 1, DIM)[0])])
    photo = catalog.image_by_path("/p/Japan trip/a.jpg").id  # type: ignore[union-attr]
    catalog.apply_videos([StartVideo(stat("/p/Japan trip/ferry.mp4"), "v1:ferry", META, 2.0)])
    video = catalog.image_by_path("/p/Japan trip/ferry.mp4").id  # type: ignore[union-attr]
    words = catalog.keywords

    def docs(*phrase: str) -> list[int]:
        return words.phrase_ids(phrase).tolist()

    assert docs("ferry") == [video] and docs("japan", "trip") == sorted([photo, video])  # partial: searchable
    assert catalog.select_files(ImageFilter(contains=("ferry",))).tolist() == []  # no moment yet: nothing to show
    catalog.apply_videos([AddMoments("/p/Japan trip/ferry.mp4", _moments(rng, [0, 2, 4]), 4.0)])
    catalog.apply_videos([FinishVideo("/p/Japan trip/ferry.mp4", 4.0)])
    moments = {m.id for m in catalog.moments_of(video)}
    assert docs("ferry") == [video] and words.doc_count() == 2
    assert set(catalog.select_images(ImageFilter(contains=("ferry",))).tolist()) == moments  # vector ids
    assert catalog.select_files(ImageFilter(contains=("ferry",))).tolist() == [video]  # catalog ids
    assert catalog.select_files(ImageFilter(contains=("japan trip",), media="photos")).tolist() == [photo]
    assert catalog.select_files(ImageFilter(media="videos")).tolist() == [video]
    catalog.apply_videos([CopyVideo(stat("/q/ferry copy.mp4", 1000, 5), video)])
    copy = catalog.image_by_path("/q/ferry copy.mp4").id  # type: ignore[union-attr]
    assert docs("copy") == [copy] and docs("ferry") == sorted([video, copy])
    catalog.apply(moved=[Moved(copy, stat("/q/boat.mp4", 1000, 5), "/q/ferry copy.mp4")])
    assert docs("copy") == [] and docs("boat") == [copy]  # moved: the document follows the name
    catalog.apply_videos([FailVideo(stat("/p/Japan trip/ferry.mp4", 1000, 7), "no frame could be decoded")])
    assert docs("ferry") == [] and docs("japan", "trip") == [photo]
    catalog.apply(removed=[copy])
    assert docs("boat") == [] and words.doc_count() == 1


V1_SQLITE = """
CREATE TABLE meta ("key" VARCHAR(64) NOT NULL, value VARCHAR(255) NOT NULL, PRIMARY KEY ("key"));
CREATE TABLE images (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL, content_hash VARCHAR(64) NOT NULL, width INTEGER, height INTEGER, format VARCHAR(16),
    captured_at DATETIME, orientation INTEGER, camera VARCHAR(255), description TEXT, captions_mtime_ns BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL, error TEXT, vector BLOB, vector_gen BIGINT NOT NULL);
CREATE INDEX ix_images_content_hash ON images (content_hash);
CREATE INDEX ix_images_vector_gen ON images (vector_gen);
CREATE UNIQUE INDEX ix_images_path ON images (path);
CREATE INDEX ix_images_state ON images (state);
CREATE INDEX ix_images_captured_at ON images (captured_at);
CREATE TABLE texts (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, source TEXT NOT NULL,
    image_path TEXT, image_id INTEGER, vector BLOB, vector_gen BIGINT NOT NULL);
CREATE INDEX ix_texts_vector_gen ON texts (vector_gen);
CREATE INDEX ix_texts_source ON texts (source);
CREATE INDEX ix_texts_image_id ON texts (image_id);
CREATE TABLE tombstones (seq INTEGER NOT NULL, corpus VARCHAR(16) NOT NULL, vector_id INTEGER NOT NULL,
    gen BIGINT NOT NULL, PRIMARY KEY (seq));
CREATE INDEX ix_tombstones_gen ON tombstones (gen);
INSERT INTO meta VALUES ('schema', '1'), ('generation', '1'), ('tombstone_floor', '0');
INSERT INTO images (path, size, mtime_ns, content_hash, captions_mtime_ns, state, vector, vector_gen)
    VALUES ('/p/old.jpg', 10, 1, 'h', 0, 'indexed', X'0000803F00000000000000000000000000000000000000000000000000000000', 1);
"""  # what xmr wrote before videos (schema 1), as its SQLAlchemy models made it


def test_a_schema_1_catalog_is_upgraded_in_place(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SQLITE)
    catalog = Catalog(sqlite_url(str(path)))
    old = catalog.image_by_path("/p/old.jpg")
    assert old is not None and old.kind == "image" and catalog.counts()["images"] == 1
    _index_video(catalog, rng, "/p/film.mp4")
    assert len(catalog.vector_ids(IMAGES)) == 6 and catalog.generation() == 3
    catalog.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(CATALOG_SCHEMA),)
        assert "ix_images_kind" in {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    Catalog(sqlite_url(str(path))).close()  # opening an upgraded catalog again changes nothing


def test_an_aged_catalog_is_upgraded_on_each_database(catalog_url: str, rng: np.random.Generator) -> None:
    """The newest schema taken back to 1 (every later column and table dropped) upgrades again,
    on SQLite and PostgreSQL, and takes videos."""
    first = Catalog(catalog_url)
    first.apply(embedded=[embedded("/p/a.jpg", unit_rows(rng, 1, DIM)[0])])
    first.close()
    downgrade_to_1(catalog_url)
    catalog = Catalog(catalog_url)
    _index_video(catalog, rng, "/p/film.mp4")
    assert catalog.image_by_path("/p/a.jpg").kind == "image"  # type: ignore[union-attr]
    assert catalog.counts() == {"images": 1, "failed": 0, "texts": 0, "videos": 1, "moments": 5}
    catalog.close()


def test_a_newer_catalog_is_refused(tmp_path: Path) -> None:
    from index.errors import LibraryVersionError

    path = tmp_path / "new.sqlite"
    Catalog(sqlite_url(str(path))).close()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE meta SET value = '{CATALOG_SCHEMA + 1}' WHERE key = 'schema'")
    with pytest.raises(LibraryVersionError, match=f"reads up to {CATALOG_SCHEMA}"):
        Catalog(sqlite_url(str(path)))
