"""Videos rank among photos: one hit per video at its best moment, checked against a brute-force oracle."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.records import ImageFilter
from retrieval.errors import QueryError
from retrieval.library import Library
from retrieval.results import Hit, Term
from retrieval.search.framing import frame_crop
from retrieval.search.hits import word_hits
from retrieval.video.frames import VideoReader
from tests.helpers.videos import EDITED, PHONE, scikit_photos, write_slideshow

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")

NAMES = ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "cat", "colorwheel")


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path, dict]:
    """Two videos, one of them in a folder of its own with a capture date, and two photos."""
    root = tmp_path_factory.mktemp("video-search")
    media = root / "media"
    (media / "trip").mkdir(parents=True)
    photos = scikit_photos(NAMES)
    items = list(photos.items())
    shots = {
        "a": write_slideshow(media / "a.mp4", items[:3], (3.0, 4.0, 3.5), gop=PHONE, seed=1),
        "b": write_slideshow(
            media / "trip" / "b.mkv",
            items[3:6],
            (4.5, 3.0, 4.0),
            gop=EDITED,
            seed=2,
            metadata={"creation_time": "2021-06-01T12:00:00.000000Z"},
        ),
    }
    for name, photo in items[6:]:
        photo.resize((96, 64)).save(media / f"{name}.png")
    os.utime(media / "cat.png", (1.5e9, 1.5e9))  # 2017: outside the dates filtered below, like today's files
    with Library.open(root / "library", model=f"local-dir:{tiny_model_dir}", device="cpu") as lib:
        report = lib.index([media])
        assert report.failed == 0 and report.videos == 2
    return root, media, shots


def _oracle(
    lib: Library, query: np.ndarray, where: ImageFilter = ImageFilter()
) -> list[tuple[str, float | None, float]]:
    """(path, moment start or None, score), one per file at its best vector: brute force over the catalog."""
    allowed = set(lib.catalog.select_images(where).tolist())
    ids = [i for i in lib.catalog.vector_ids("images").tolist() if i in allowed]
    vectors = lib.catalog.vectors_for(ids)
    moments = lib.catalog.moments(ids)
    files = lib.catalog.images(sorted({m.video_id for m in moments.values()} | (set(ids) - set(moments))))
    best: dict[str, tuple[float, float | None]] = {}
    for i in ids:
        score = float(np.frombuffer(vectors[i], "<f4") @ query)
        path, start = (files[moments[i].video_id].path, moments[i].start) if i in moments else (files[i].path, None)
        if path not in best or score > best[path][0]:
            best[path] = (score, start)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])
    return [(path, start, score) for path, (score, start) in ranked]


def test_one_hit_per_video_at_its_best_moment_as_brute_force_ranks_them(
    library_dir: tuple, film_query: np.ndarray
) -> None:
    root, media, _ = library_dir
    with Library.open(root / "library", device="cpu") as lib:
        for query in film_query:
            hits = lib.search_vector(query, k=10)
            want = _oracle(lib, query)
            assert [(h.path, h.start) for h in hits] == [(p, s) for p, s, _ in want]
            np.testing.assert_allclose([h.score for h in hits], [s for *_, s in want], atol=1e-5)
            for hit in hits:
                assert (hit.media == "video") == (hit.start is not None)
                if hit.media == "video":
                    assert hit.end > hit.start and hit.video_id is not None
                    assert all(m.score <= hit.score and m.id != hit.id for m in hit.moments)
                    assert [m.score for m in hit.moments] == sorted((m.score for m in hit.moments), reverse=True)
                    assert hit.to_json()["start"] == hit.start


def test_paging_media_and_filters_apply_to_videos(library_dir: tuple, film_query: np.ndarray) -> None:
    root, media, _ = library_dir
    query = film_query[0]
    with Library.open(root / "library", device="cpu") as lib:
        every = lib.search_vector(query, k=10)
        assert len(every) == 4  # two videos and two photos, whatever number of moments
        assert lib.search_vector(query, k=2, offset=2) == every[2:4]  # ranks carry on across pages
        videos = lib.search_vector(query, k=10, where=ImageFilter(media="videos"))
        assert [h.path for h in videos] == [h.path for h in every if h.media == "video"]
        photos = lib.search_vector(query, k=10, where=ImageFilter(media="photos"))
        assert [h.path for h in photos] == [h.path for h in every if h.media == "photo"]
        trip = lib.search_vector(query, k=10, where=ImageFilter(under=(str(media / "trip"),)))
        assert [h.path for h in trip] == [str(media / "trip" / "b.mkv")]
        assert [h.path for h in lib.search_vector(query, k=10, where=ImageFilter(extensions=("mkv", "mp4")))] == [
            h.path for h in videos
        ]
        dated = lib.search_vector(
            query, k=10, where=ImageFilter(after=datetime(2021, 5, 1), before=datetime(2021, 7, 1))
        )
        assert [h.path for h in dated] == [str(media / "trip" / "b.mkv")]  # the container's creation date counts
        for hit, want in zip(
            dated, _oracle(lib, query, ImageFilter(after=datetime(2021, 5, 1), before=datetime(2021, 7, 1)))
        ):
            assert (hit.path, hit.start) == want[:2]
        each = lib.search_vector(query, k=100, per_video=False)
        assert len(each) == len(lib.images.index)  # every moment its own hit
        assert [h.start for h in each if h.path == every[0].path][0] == every[0].start
        with pytest.raises(QueryError, match="rerankers score photos"):
            lib.search(text="a cat", where=ImageFilter(media="videos"), reranker=object())  # type: ignore[arg-type]


def test_a_frame_finds_the_moment_it_came_from(library_dir: tuple) -> None:
    """``xmr search --image frame.png``: the frame a moment shows finds that moment, and a frame from
    within a shot finds its video."""
    root, media, shots = library_dir
    with Library.open(root / "library", device="cpu") as lib:
        for name, path in (("a", media / "a.mp4"), ("b", media / "trip" / "b.mkv")):
            video = lib.catalog.image_by_path(str(path))
            for moment in lib.catalog.moments_of(video.id):  # type: ignore[union-attr]
                with VideoReader(path) as reader:
                    frame = reader.frame_at(moment.start, 448)
                (hit, *_) = lib.search(image=frame, k=1)
                assert (hit.path, hit.id, hit.start, hit.end) == (str(path), moment.id, moment.start, moment.end)
                assert hit.score > 0.999
            for shot in shots[name]:
                with VideoReader(path) as reader:
                    frame = reader.frame_at((shot.start + shot.end) / 2, 448)
                assert lib.search(image=frame, k=1)[0].path == str(path)


def test_keyword_hybrid_contains_and_sort_take_a_video_as_one_file(library_dir: tuple, film_query: np.ndarray) -> None:
    """A video's file and folder names are keyword data: keyword search shows it from its first
    moment, hybrid search fuses file rankings (one hit per video, at its best moment by cosine),
    --contains keeps its moments, and --sort orders it by its file's date."""
    root, media, _ = library_dir
    trip = str(media / "trip" / "b.mkv")
    with Library.open(root / "library", device="cpu") as lib:
        video = lib.catalog.image_by_path(trip)
        assert video is not None
        first = lib.catalog.moments_of(video.id)[0]
        (hit,) = lib.search_vector(None, k=10, words="trip", mode="keyword")
        assert (hit.path, hit.media, hit.id, hit.start, hit.video_id) == (
            trip,
            "video",
            first.id,
            first.start,
            video.id,
        )
        assert hit.keyword_score == hit.score > 0 and hit.match is not None
        assert (hit.match.source, hit.match.text) == ("filename", "trip")
        for media_kind, suffixes in (("photos", (".png",)), ("videos", (".mp4", ".mkv"))):
            found = lib.search_vector(None, k=10, words="media", mode="keyword", where=ImageFilter(media=media_kind))
            assert len(found) == 2 and all(h.path.endswith(suffixes) for h in found)  # the folder every file is in

        query = film_query[0]
        want = _oracle(lib, query)
        best = {path: (start, score) for path, start, score in want}
        hybrid = lib.search_vector(query, k=10, words="trip", mode="hybrid")
        assert hybrid[0].path == trip and sorted(h.path for h in hybrid) == sorted(best)  # one hit per file
        assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)  # fused, best first
        for h in hybrid:
            assert h.start == best[h.path][0] and h.dual_score == pytest.approx(best[h.path][1], abs=1e-5)
            assert (h.keyword_score is not None) == (h.path == trip)
        (direct,) = word_hits(lib.catalog, lib.catalog.images([video.id]), query).values()  # found by words alone
        assert (direct.path, direct.start) == (trip, best[trip][0]) and direct.score == pytest.approx(best[trip][1])

        where = ImageFilter(contains=("trip",))
        contained = lib.search_vector(query, k=10, where=where)
        assert [(h.path, h.start) for h in contained] == [(p, s) for p, s, _ in _oracle(lib, query, where)]
        assert [h.path for h in contained] == [trip] and contained[0].match.source == "filename"  # type: ignore[union-attr]

        dated = lib.search_vector(query, k=10, sort="-date")
        files = lib.catalog.images([h.file_id for h in dated])

        def when(h: Hit) -> float:
            return h.captured_at.timestamp() if h.captured_at else files[h.file_id].mtime_ns / 1e9

        assert sorted(h.path for h in dated) == sorted(best) and dated[-1].path == str(media / "cat.png")
        assert [when(h) for h in dated] == sorted((when(h) for h in dated), reverse=True)

        with pytest.raises(QueryError, match="each-moment"):
            lib.search_vector(query, k=10, words="trip", mode="hybrid", per_video=False)
        each = lib.search_vector(query, k=100, words="trip", mode="auto", per_video=False)
        plain = lib.search_vector(query, k=100, per_video=False)  # auto is semantic then: every moment a hit
        assert [(h.id, h.score) for h in each] == [(h.id, h.score) for h in plain] and len(each) > len(best)


@pytest.fixture(scope="module")
def film_query(library_dir: tuple) -> np.ndarray:
    """Query vectors: a few unit rows near the library's own vectors, and random ones."""
    root, _, _ = library_dir
    with Library.open(root / "library", device="cpu") as lib:
        ids = lib.catalog.vector_ids("images")
        vectors = np.stack([np.frombuffer(v, "<f4") for v in lib.catalog.vectors_for(ids.tolist()).values()])
    rng = np.random.default_rng(0)
    near = vectors[rng.choice(len(vectors), 3, replace=False)] + rng.normal(0, 0.05, (3, vectors.shape[1]))
    queries = np.concatenate([near, rng.normal(size=(3, vectors.shape[1]))]).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


# ---- image queries framed like each video's frames (retrieval.search.framing) -----------------


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """A 16:9 video, a portrait (9:16) one in a folder of its own, and two photos."""
    root = tmp_path_factory.mktemp("video-framing")
    media = root / "media"
    (media / "phone").mkdir(parents=True)
    items = list(scikit_photos(NAMES).items())
    write_slideshow(media / "wide.mp4", items[:3], (3.0, 4.0, 3.0), size=(96, 54), gop=PHONE, seed=3)
    write_slideshow(media / "phone" / "tall.mp4", items[3:6], (3.0, 3.0, 4.0), size=(54, 96), gop=EDITED, seed=4)
    for name, photo in items[6:]:
        photo.save(media / f"{name}.png")
    with Library.open(root / "library", model=f"local-dir:{tiny_model_dir}", device="cpu") as lib:
        report = lib.index([media])
        assert report.failed == 0 and report.videos == 2
    return root, media


def _framed_oracle(lib: Library, picture: Image.Image, where: ImageFilter = ImageFilter()) -> dict[int, float]:
    """Vector id -> score, by brute force: a photo its cosine with the plain query; a moment the
    better of that and its cosine with the query cropped to its video's shape."""

    def embed(image: Image.Image) -> np.ndarray:
        return lib.encoder.encode_images(lib.encoder.stack([lib.encoder.preprocess(image)]))[0]

    plain = embed(picture.convert("RGB"))
    ids = lib.catalog.select_images(where).tolist()
    vectors = {i: np.frombuffer(v, "<f4") for i, v in lib.catalog.vectors_for(ids).items()}
    moments = lib.catalog.moments(ids)
    videos = lib.catalog.images(sorted({m.video_id for m in moments.values()}))
    scores = {}
    for i, vector in vectors.items():
        scores[i] = float(plain @ vector)
        if i in moments:
            video = videos[moments[i].video_id]
            crop = frame_crop(picture.convert("RGB"), video.width / video.height)  # type: ignore[operator]
            if crop is not None:
                scores[i] = max(scores[i], float(embed(crop) @ vector))
    return scores


def test_an_image_query_scores_each_moment_framed_like_its_video_as_brute_force_does(
    shapes_dir: tuple[Path, Path],
) -> None:
    root, media = shapes_dir
    queries = {
        "square": scikit_photos(("astronaut",))["astronaut"],
        "3:2": scikit_photos(("coffee",))["coffee"],
        "portrait": scikit_photos(("rocket",))["rocket"].transpose(Image.Transpose.ROTATE_90),
        "16:9": scikit_photos(("chelsea",))["chelsea"].resize((160, 90)),
    }
    indexed = media / f"{NAMES[6]}.png"  # a query by the path of an indexed photo: its stored vector, and crops
    raised = 0
    with Library.open(root / "library", device="cpu") as lib:
        for label, picture in [*queries.items(), ("indexed", Image.open(indexed))]:
            query = indexed if label == "indexed" else picture
            for where in (ImageFilter(), ImageFilter(media="videos"), ImageFilter(under=(str(media / "phone"),))):
                want = _framed_oracle(lib, picture, where)
                hits = lib.search(image=query, k=100, per_video=False, where=where)
                assert [h.id for h in hits] == sorted(want, key=lambda i: (-want[i], i)), (label, where)
                np.testing.assert_allclose([h.score for h in hits], [want[h.id] for h in hits], atol=1e-5)
                files = lib.search(image=query, k=10, where=where)  # one hit per video, at its best moment
                best: dict[str, tuple[float, int]] = {}
                for h in hits:
                    best.setdefault(h.path, (h.score, h.id))
                assert [(h.path, h.id) for h in files] == [(p, i) for p, (_, i) in best.items()]
                page = lib.search(image=query, k=2, offset=1, where=where)  # ranks carry on
                assert [(h.rank, h.id, h.score) for h in page] == [(h.rank, h.id, h.score) for h in files[1:3]]
            plain = lib.search_vector(lib.embed_image(query), k=100, per_video=False)
            unframed = lib.search(image=query, k=100, per_video=False, video_framing=False)
            assert [h.id for h in unframed] == [h.id for h in plain]
            np.testing.assert_allclose([h.score for h in unframed], [h.score for h in plain], atol=1e-6)
            photos = [(h.id, h.score) for h in plain if h.media == "photo"]  # photos keep their plain scores
            assert [
                (h.id, h.score) for h in lib.search(image=query, k=100, per_video=False) if h.media == "photo"
            ] == photos
            framed = {h.id: h.score for h in lib.search(image=query, k=100, per_video=False)}
            raised += sum(framed[h.id] > h.score + 1e-6 for h in plain if h.media == "video")
            if label == "16:9":  # no crop for the wide video's moments; the tall one's do change
                assert all(
                    framed[h.id] == pytest.approx(h.score, abs=1e-6) for h in plain if h.path.endswith("wide.mp4")
                )
        assert raised > 0  # framing changed some scores (else the oracle above proved little)
        only_photos = lib.search(image=queries["square"], where=ImageFilter(media="photos"), k=10)
        mixed = [h for h in lib.search(image=queries["square"], k=10) if h.media == "photo"]
        assert [h.id for h in only_photos] == [h.id for h in mixed]
        np.testing.assert_allclose([h.score for h in only_photos], [h.score for h in mixed], atol=1e-6)


def test_texts_alone_are_not_framed_and_images_among_terms_are(shapes_dir: tuple[Path, Path]) -> None:
    """A text query is as before; a text and an image together: each moment also scores the
    weighted sum with the image cropped like its video."""
    root, _ = shapes_dir
    picture = scikit_photos(("astronaut",))["astronaut"]
    terms = [Term(text="a person in a suit", weight=0.5), Term(image=picture, weight=1.0)]
    with Library.open(root / "library", device="cpu") as lib:
        text = lib.search("a person in a suit", k=100, per_video=False, mode="semantic")
        assert text == lib.search_vector(lib.embed_terms([Term(text="a person in a suit")]), k=100, per_video=False)
        hits = lib.search(terms=terms, k=100, per_video=False, mode="semantic")
        text_vector = lib.embed_terms([Term(text="a person in a suit")])
        plain = lib.embed_image(picture)
        vectors = lib.catalog.vectors_for([h.id for h in hits])
        moments = lib.catalog.moments([h.id for h in hits])
        videos = lib.catalog.images(sorted({m.video_id for m in moments.values()}))
        for hit in hits:
            vector = np.frombuffer(vectors[hit.id], "<f4")

            def score(image_vector: np.ndarray, vector: np.ndarray = vector) -> float:
                total = 0.5 * text_vector + image_vector
                return float(total / np.linalg.norm(total) @ vector)

            want = score(plain)
            if hit.id in moments:
                video = videos[moments[hit.id].video_id]
                crop = frame_crop(picture, video.width / video.height)  # type: ignore[operator]
                assert crop is not None  # a square picture is cropped for either video
                want = max(want, score(lib.embed_image(crop)))
            assert hit.score == pytest.approx(want, abs=1e-5)
