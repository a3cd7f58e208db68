"""The catalog's tables (SQLAlchemy 2.0 typed ORM); see :mod:`index.catalog` for their use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from index.schema_names import CATALOG_SCHEMA, IMAGE, IMAGES, TEXTS, VIDEO  # noqa: F401 (re-exported)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are vector ids: never reuse one

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64), index=True, default="")
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    captured_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    orientation: Mapped[int | None] = mapped_column(Integer)
    camera: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)  # embedded caption (EXIF/XMP)
    captions_mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)  # newest sidecar seen; 0 none
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    vector_gen: Mapped[int] = mapped_column(BigInteger, index=True, default=0)
    # 63-bit perceptual hash of the upright pixels (retrieval.images.phash); NULL on rows from
    # schema 1 until an index run reads them again. On the row, like the vector: moves keep it.
    phash: Mapped[int | None] = mapped_column(BigInteger)
    # The file whose bytes were indexed (st_dev, st_ino as signed 64-bit; see index.records):
    # /file serves only that inode. NULL: indexed before schema 4, filled by the next run.
    dev: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ino: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(8), index=True, default=IMAGE, server_default=IMAGE)  # IMAGE or VIDEO


class VideoRow(Base):
    """What a video file's container says, and how far indexing its moments got."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # the file's images row
    duration: Mapped[float] = mapped_column(Float)  # seconds
    codec: Mapped[str] = mapped_column(String(32))  # FFmpeg decoder name, e.g. "h264"
    fps: Mapped[float] = mapped_column(Float)  # average frames per second, 0 when unknown
    rotation: Mapped[int] = mapped_column(Integer)  # degrees counter-clockwise that turn frames upright
    interval: Mapped[float] = mapped_column(Float)  # seconds between samples it was indexed with
    done: Mapped[float] = mapped_column(Float, default=0.0)  # moments cover [0, done) s: a killed run resumes here


class MomentRow(Base):
    """A stretch of a video shown by one frame; its vector is in the image index."""

    __tablename__ = "moments"

    # Vector ids share the images' id space: each is taken from the images id sequence
    # (index.moments.allocate_ids), so no photo and no moment ever hold the same id.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    video_id: Mapped[int] = mapped_column(Integer, index=True)  # images row of the video file
    start_s: Mapped[float] = mapped_column(Float)  # seconds from the start of the video: its frame
    end_s: Mapped[float] = mapped_column(Float)  # seconds: where the next moment starts
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    vector_gen: Mapped[int] = mapped_column(BigInteger, index=True, default=0)


class TextRow(Base):
    __tablename__ = "texts"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, index=True)  # the file it came from (absolute path)
    image_path: Mapped[str | None] = mapped_column(Text)  # the image it describes, if any
    image_id: Mapped[int | None] = mapped_column(Integer, index=True)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    vector_gen: Mapped[int] = mapped_column(BigInteger, index=True, default=0)


class Tombstone(Base):
    __tablename__ = "tombstones"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    corpus: Mapped[str] = mapped_column(String(16))
    vector_id: Mapped[int] = mapped_column(Integer)
    gen: Mapped[int] = mapped_column(BigInteger, index=True)


class OcrResultRow(Base):
    """That the text of some bytes was read (even when none was found), by what, or why not."""

    __tablename__ = "ocr_results"
    content_hash: Mapped[str] = mapped_column(
        String(64), primary_key=True
    )  # moves and copies keep it; an edit reads again
    engine: Mapped[str] = mapped_column(String(128))  # what read it, e.g. "rapidocr-onnxruntime 1.4.4 PP-OCRv4"
    lines: Mapped[int] = mapped_column(Integer, default=0)  # lines found
    error: Mapped[str | None] = mapped_column(Text)  # why the text could not be read; None when it was


class OcrLineRow(Base):
    """One line of text read from an image's bytes, with where it is."""

    __tablename__ = "ocr_lines"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    line: Mapped[int] = mapped_column(Integer)  # reading order, 0 first
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    box: Mapped[str] = mapped_column(
        String(160)
    )  # 8 comma-separated fractions: x,y of 4 corners clockwise from top-left


class KeywordDocRow(Base):
    """What an indexed image says about itself, as keyword tokens per source (index.keywords).

    One row per indexed image; the full-text index over it (created per dialect in
    index.migrations) is kept in step by triggers (SQLite) or a generated column (PostgreSQL),
    inside the transaction that writes the row.
    """

    __tablename__ = "keyword_docs"
    image_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # images.id
    names: Mapped[str] = mapped_column(Text, default="")  # file name and the folders above it
    captions: Mapped[str] = mapped_column(Text, default="")  # sidecar captions and the embedded description
    tags: Mapped[str] = mapped_column(Text, default="")  # title and keywords (IPTC, XMP dc:subject)
    ocr: Mapped[str] = mapped_column(Text, default="")  # text read from the pixels
    tags_raw: Mapped[str] = mapped_column(Text, default="")  # title and keywords as written, one a line (for snippets)
