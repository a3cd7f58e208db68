"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

ItemId = Annotated[int, Field(ge=0, le=2**63 - 1)]


class SearchRequest(BaseModel):
    """A query with the CLI's algebra: texts, example images and catalog items, each optionally weighed
    or negated; filters; paging; reranking."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    q: list[str] = Field(default=[], description="Texts to look for (several add up), like the CLI's TEXT arguments.")
    not_: list[str] = Field(default=[], alias="not", description="Texts to steer away from (--not).")
    like: list[ItemId] = Field(
        default=[], description="Catalog item ids to look like ('more like this'); name one in weights as #ID."
    )
    unlike: list[ItemId] = Field(default=[], description="Catalog item ids to steer away from.")
    images: list[str] = Field(default=[], description="Upload ids (from POST /api/uploads) to look like (--image).")
    not_images: list[str] = Field(default=[], description="Upload ids to steer away from (--not-image).")
    weights: list[str] = Field(
        default=[], description="WEIGHT:TERM, e.g. '2:beach', '0.5:#12' or '3:UPLOAD_ID' (--weight)."
    )
    under: list[str] = Field(default=[], description="Only images under these folders (--under).")
    after: Optional[str] = Field(default=None, description="Captured at or after this date, e.g. 2024-06-01 (--after).")
    before: Optional[str] = Field(default=None, description="Captured before this date (--before).")
    ext: list[str] = Field(default=[], description="Only these extensions, e.g. ['jpg,png'] (--ext).")
    media: Literal["all", "photos", "videos"] = Field(default="all", description="Photos, videos or both (--media).")
    k: int = Field(default=20, ge=1, le=2**31, description="Page size (-k); at most the server's max_k.")
    offset: int = Field(default=0, ge=0, le=2**31, description="Skip this many results (paging).")
    min_score: Optional[float] = Field(default=None, description="Drop results scoring below this.")
    rerank: bool = Field(default=False, description="Rescore the top candidates with the server's reranker.")
    mode: Literal["auto", "semantic", "keyword", "hybrid"] = Field(
        default="auto",
        description="semantic, keyword (the q words in the images' OCR text, names, captions, keywords), hybrid "
        "(both fused), or auto: hybrid when an image's own text holds a word of q (--mode).",
    )
    contains: list[str] = Field(
        default=[], description="Only images whose text holds each of these, words in a row (--contains)."
    )
    sort: Literal["relevance", "date", "-date"] = Field(
        default="relevance", description="Order of the page's hits: relevance, or capture time (--sort)."
    )


def limited_request(max_k: int, max_offset: int, max_terms: int, max_chars: int) -> type[SearchRequest]:
    """``SearchRequest`` with this server's limits in its schema, so clients and fuzzers see them."""
    text = Annotated[str, Field(max_length=max_chars)]
    texts: tuple[type[list[str]], object] = (list[text], Field(default=[], max_length=max_terms))  # (type, FieldInfo)
    return create_model(
        "SearchRequest",
        __base__=SearchRequest,
        __doc__=SearchRequest.__doc__,
        q=(
            list[text],
            Field(default=[], max_length=max_terms, description=SearchRequest.model_fields["q"].description),
        ),
        not_=(
            list[text],
            Field(
                default=[],
                max_length=max_terms,
                alias="not",
                description=SearchRequest.model_fields["not_"].description,
            ),
        ),
        like=(
            list[ItemId],
            Field(default=[], max_length=max_terms, description=SearchRequest.model_fields["like"].description),
        ),
        unlike=(list[ItemId], Field(default=[], max_length=max_terms)),
        images=texts,
        not_images=texts,
        weights=texts,
        under=texts,
        ext=texts,
        contains=texts,
        k=(int, Field(default=20, ge=1, le=max_k, description="Page size.")),
        offset=(int, Field(default=0, ge=0, le=max_offset, description="Skip this many results (paging).")),
    )


class MomentOut(BaseModel):
    id: int = Field(description="The moment's item id (its thumbnail is the frame at its start).")
    score: float
    start: float = Field(description="Seconds into the video.")
    end: float


class MatchOut(BaseModel):
    text: str = Field(description="The OCR line, caption, keyword or file name that holds the query's words.")
    source: str = Field(description="ocr, caption, keywords or filename.")
    box: Optional[list[float]] = Field(
        default=None,
        description="ocr only: x, y of the line's 4 corners (clockwise from top-left) as fractions of width and height.",
    )


class ImageHitOut(BaseModel):
    rank: int
    score: float = Field(
        description="Cosine similarity; reranked: the reranker's match probability; hybrid: the fused score; "
        "keyword: the keyword score."
    )
    dual_score: Optional[float] = Field(default=None, description="When reranked or hybrid: the dual encoder's cosine.")
    keyword_score: Optional[float] = Field(default=None, description="Keyword or hybrid: the keyword score.")
    match: Optional[MatchOut] = Field(default=None, description="Where the query's words (or contains) matched.")
    id: int
    path: str
    name: str
    width: Optional[int] = None
    height: Optional[int] = None
    format: Optional[str] = None
    captured_at: Optional[str] = None
    camera: Optional[str] = None
    thumbnail: str = Field(description="URL of the small thumbnail (a video's: the frame at its moment).")
    preview: str = Field(description="URL of the large thumbnail.")
    file: str = Field(description="URL of the original file (byte ranges served: a video plays from any second).")
    media: str = Field(default="photo", description="photo or video.")
    start: Optional[float] = Field(default=None, description="Video: seconds where the matching moment starts.")
    end: Optional[float] = Field(default=None, description="Video: seconds where it ends.")
    video_id: Optional[int] = Field(default=None, description="Video: the item id of the video file.")
    moments: list[MomentOut] = Field(default=[], description="Video: its other matching moments, best first.")


class TextHitOut(BaseModel):
    rank: int
    score: float = Field(description="Cosine similarity; when reranked, the reranker's match probability.")
    dual_score: Optional[float] = Field(default=None, description="When reranked: the dual encoder's cosine.")
    id: int
    text: str
    source: str
    image_path: Optional[str] = None


class SearchResponse(BaseModel):
    hits: list[ImageHitOut]
    k: int
    offset: int
    next_offset: Optional[int] = Field(description="Offset of the next page; null when this page was the last.")
    reranked: bool
    upload: Optional[str] = Field(
        default=None, description="Id of the image uploaded with this request, for later queries."
    )
    took_ms: float
    note: Optional[str] = Field(
        default=None,
        description="When there are no hits: why, naming the filter that matched nothing "
        "(e.g. 'no indexed image is under /photos/2031.').",
    )


class TextSearchResponse(BaseModel):
    hits: list[TextHitOut]
    k: int
    offset: int
    next_offset: Optional[int]
    reranked: bool
    took_ms: float


class UploadOut(BaseModel):
    id: str = Field(description="Name this upload in SearchRequest.images / not_images / weights.")
    width: int
    height: int


class ItemOut(BaseModel):
    id: int
    path: str
    name: str
    size: int
    width: Optional[int] = None
    height: Optional[int] = None
    format: Optional[str] = None
    captured_at: Optional[str] = None
    camera: Optional[str] = None
    description: Optional[str] = None
    media_type: str
    media: str = "photo"
    start: Optional[float] = None
    end: Optional[float] = None
    video_id: Optional[int] = None


class Health(BaseModel):
    status: str
    images: int


class Limits(BaseModel):
    max_k: int
    max_offset: int
    max_terms: int
    max_query_chars: int
    max_upload_bytes: int
    max_pixels: int
    thumb_sides: list[int]


class InfoOut(BaseModel):
    directory: str
    model: str
    embed_dim: int
    images: int
    failed: int
    texts: int
    index_kind: str
    vectors: int
    bytes_on_disk: int
    videos: int = 0
    moments: int = 0
    reranker: Optional[str] = Field(description="The reranker this server loaded; null when none.")
    limits: Limits
