"""The FastAPI app of ``xmr serve``: JSON search API, thumbnails, originals and the search page.

Build it with :func:`create_app` around an open :class:`~retrieval.library.Library`; every
route is a plain function that FastAPI runs on its worker threads (library searches are
thread-safe and pick up what other processes index meanwhile).
"""

import contextlib
import functools
import io
import time
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal, Optional, Union
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel

from index.errors import DiskFullError, MissingDependencyError, XmrError
from retrieval.errors import (
    ItemFileError,
    ItemNotFoundError,
    QueryError,
    RangeNotSatisfiableError,
    RequestLimitError,
    RerankUnavailableError,
    UploadNotFoundError,
    UploadTooLargeError,
)
from retrieval.serve.config import ServeConfig
from retrieval.serve.duplicates import add_duplicate_routes, add_duplicates_page
from retrieval.serve.items import ThumbnailCache, item_json, item_of, media_type, open_original
from retrieval.serve.queries import Searcher, json_safe
from retrieval.serve.ranges import byte_range
from retrieval.serve.schemas import (
    Health,
    ImageHitOut,
    InfoOut,
    ItemOut,
    Limits,
    SearchRequest,
    SearchResponse,
    TextHitOut,
    TextSearchResponse,
    UploadOut,
    limited_request,
)
from retrieval.serve.security import Guard

if TYPE_CHECKING:
    from retrieval.library import Library
    from retrieval.rerank.base import Reranker
    from retrieval.results import Hit
# No `from __future__ import annotations` here: route signatures use the limits of the
# ServeConfig they are built with, so FastAPI must see their annotations evaluated.

__all__ = ["create_app", "error_status"]

STATIC = {"app.js": "text/javascript", "style.css": "text/css", "duplicates.js": "text/javascript"}

# Typed errors -> HTTP status, most specific first; anything unlisted is a server error.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ItemNotFoundError, 404),
    (ItemFileError, 404),
    (UploadNotFoundError, 404),
    (UploadTooLargeError, 413),
    (RequestLimitError, 422),
    (QueryError, 422),
    (RerankUnavailableError, 400),
    (MissingDependencyError, 503),
    (DiskFullError, 507),  # Insufficient Storage: a thumbnail could not be written
)


class ErrorOut(BaseModel):
    detail: Union[str, list[dict[str, Any]]]  # a sentence naming the problem; request validation lists each field


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 411, 413, 421, 422)
}
ItemIdPath = Annotated[int, Path(ge=0, le=2**63 - 1, description="A catalog id from search results.")]


def error_status(exc: Exception) -> int:
    """The HTTP status of a typed error (500 for one that is not the client's fault)."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def create_app(library: "Library", config: ServeConfig = ServeConfig(), reranker: "Reranker | None" = None) -> FastAPI:
    """The ASGI app serving ``library`` under ``config``'s limits and token.

    ``reranker`` is a ready reranker; when None and ``config.reranker`` names one, it is
    loaded with ``library.load_reranker``.

    Raises:
        RerankUnavailableError: a reranker is named but this xmr cannot load rerankers.
    """
    if reranker is None and config.reranker:
        reranker = _load_reranker(library, config.reranker)
    searcher = Searcher(library, config, reranker)
    thumbs = ThumbnailCache(config.cache_dir or _default_cache(library), config.thumb_sides)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads
        await anyio.to_thread.run_sync(
            lambda: library.encoder.encode_texts(["warm up"])
        )  # load the model before the first query
        yield

    app = FastAPI(
        title="xmr",
        version="1",
        summary="Search a photo library by text, by image, or like one of its photos.",
        lifespan=lifespan,
    )
    app.add_middleware(
        Guard,
        token=config.token,
        max_body=config.max_upload_bytes + 64 * 1024,
        allowed_hosts=frozenset((config.host, *config.allowed_hosts)),
    )

    @app.exception_handler(XmrError)
    async def _typed_error(_: Request, exc: XmrError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad input and fails (500) when JSON cannot carry
        # it (a lone surrogate, NaN); the same list of errors, made JSON-safe.
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    api = APIRouter(prefix="/api", responses=_ERRORS)
    _add_search_routes(api, searcher)
    _add_item_routes(api, library, thumbs, searcher)
    _add_info_routes(api, library, config, reranker)
    add_duplicate_routes(api, library, config.max_k)
    app.include_router(api)
    _add_page_routes(app)
    add_duplicates_page(app, _static_text("duplicates.html"))
    return app


def _load_reranker(library: "Library", spec: str) -> "Reranker":
    load = getattr(library, "load_reranker", None)
    if load is None:
        raise RerankUnavailableError(
            f"this xmr cannot load rerankers yet, so --reranker {spec} cannot be used; leave it out."
        )
    return load(spec)


def _default_cache(library: "Library"):  # noqa: ANN202 (a Path)
    import hashlib

    from retrieval.serve.config import default_cache_dir

    return default_cache_dir() / hashlib.blake2b(str(library.layout.root).encode(), digest_size=8).hexdigest()


def _hit_out(hit: "Hit") -> ImageHitOut:
    base = f"/api/items/{hit.id}"
    return ImageHitOut.model_validate(
        {
            **hit.to_json(),
            "name": hit.path.rsplit("/", 1)[-1],
            "thumbnail": f"{base}/thumbnail",
            "preview": f"{base}/thumbnail?size=1280",
            "file": f"{base}/file",
        }
    )


def _page(hits: list, req: SearchRequest) -> tuple[list, Optional[int]]:
    """The page's hits and the next page's offset: only when the one-more look-ahead found a hit
    (a page that is exactly full may be the last one)."""
    return hits[: req.k], (req.offset + req.k if len(hits) > req.k else None)


def _image_response(
    searcher: Searcher, req: SearchRequest, start: float, upload: Optional[str] = None
) -> SearchResponse:
    found, reranked = searcher.search_images(req, extra=1)
    hits, next_offset = _page(found, req)
    note = None if hits else searcher.explain_no_hits(req)
    took = (time.perf_counter() - start) * 1e3
    return SearchResponse(
        hits=[_hit_out(h) for h in hits],
        k=req.k,
        offset=req.offset,
        next_offset=next_offset,
        reranked=reranked,
        upload=upload,
        took_ms=took,
        note=note,
    )


def _text_response(searcher: Searcher, req: SearchRequest, start: float) -> TextSearchResponse:
    found, reranked = searcher.search_texts(req, extra=1)
    hits, next_offset = _page(found, req)
    return TextSearchResponse(
        hits=[TextHitOut.model_validate(h.to_json()) for h in hits],
        k=req.k,
        offset=req.offset,
        next_offset=next_offset,
        reranked=reranked,
        took_ms=(time.perf_counter() - start) * 1e3,
    )


def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(f"the image is over {limit} bytes; this server takes at most {limit}.")
    return data


def _add_search_routes(api: APIRouter, searcher: Searcher) -> None:
    cfg = searcher.config
    Body = limited_request(cfg.max_k, cfg.max_offset, cfg.max_terms, cfg.max_query_chars)  # noqa: N806 (a class)

    @api.post("/search", response_model=SearchResponse, tags=["search"])
    def search(req: Body) -> SearchResponse:  # type: ignore[valid-type]
        """Rank images by texts, uploaded images and catalog items, with filters and paging."""
        return _image_response(searcher, req, time.perf_counter())

    @api.get("/search", response_model=SearchResponse, tags=["search"])
    def search_text(
        q: Annotated[list[str], Query(description="Text to look for (repeatable: several add up).")],
        k: Annotated[int, Query(ge=1, le=cfg.max_k)] = 20,
        offset: Annotated[int, Query(ge=0, le=cfg.max_offset)] = 0,
        min_score: Optional[float] = None,
        rerank: bool = False,
        mode: Literal["auto", "semantic", "keyword", "hybrid"] = "auto",
        contains: Annotated[list[str], Query(description="Only images whose text holds these words in a row.")] = [],  # noqa: B006 (FastAPI reads it)
        sort: Literal["relevance", "date", "-date"] = "relevance",
    ) -> SearchResponse:
        """Rank images by text (the short form of POST /api/search)."""
        start = time.perf_counter()
        request = SearchRequest(
            q=q, k=k, offset=offset, min_score=min_score, rerank=rerank, mode=mode, contains=contains, sort=sort
        )
        return _image_response(searcher, request, start)

    @api.post("/search/texts", response_model=TextSearchResponse, tags=["search"])
    def search_texts(req: Body) -> TextSearchResponse:  # type: ignore[valid-type]
        """Rank the library's texts (captions, tags) by the query: image-to-text with images or items."""
        return _text_response(searcher, req, time.perf_counter())

    @api.post("/uploads", response_model=UploadOut, tags=["search"])
    def upload(file: Annotated[UploadFile, File(description="A query image.")]) -> UploadOut:
        """Embed a query image once; name its id in later searches (paging, combining with text)."""
        key, item = searcher.add_upload(_read_upload(file, searcher.config.max_upload_bytes))
        return UploadOut(id=key, width=item.image.width, height=item.image.height)

    @api.post("/search/image", response_model=SearchResponse, tags=["search"])
    def search_image(
        file: Annotated[UploadFile, File(description="A query image.")],
        k: Annotated[int, Form(ge=1, le=cfg.max_k)] = 20,
        offset: Annotated[int, Form(ge=0, le=cfg.max_offset)] = 0,
        rerank: Annotated[bool, Form()] = False,
    ) -> SearchResponse:
        """Rank images by an uploaded image; the reply's ``upload`` id serves later pages."""
        start = time.perf_counter()
        key, _ = searcher.add_upload(_read_upload(file, searcher.config.max_upload_bytes))
        return _image_response(searcher, SearchRequest(images=[key], k=k, offset=offset, rerank=rerank), start, key)


def _add_item_routes(api: APIRouter, library: "Library", thumbs: ThumbnailCache, searcher: Searcher) -> None:
    cfg = searcher.config

    @api.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
    def item(item_id: ItemIdPath) -> ItemOut:
        """Metadata of one photo, or of a video at one of its moments."""
        return ItemOut.model_validate(item_json(item_of(library.catalog, item_id)))

    @api.get("/items/{item_id}/similar", response_model=SearchResponse, tags=["search"])
    def similar(
        item_id: ItemIdPath,
        k: Annotated[int, Query(ge=1, le=cfg.max_k)] = 20,
        offset: Annotated[int, Query(ge=0, le=cfg.max_offset)] = 0,
        rerank: bool = False,
    ) -> SearchResponse:
        """Images like this one ("more like this"); the image itself comes first."""
        start = time.perf_counter()
        item_of(library.catalog, item_id)
        return _image_response(searcher, SearchRequest(like=[item_id], k=k, offset=offset, rerank=rerank), start)

    @api.get("/items/{item_id}/texts", response_model=TextSearchResponse, tags=["search"])
    def texts_for(item_id: ItemIdPath, k: Annotated[int, Query(ge=1, le=cfg.max_k)] = 5) -> TextSearchResponse:
        """The library's texts that best describe this image (image-to-text)."""
        start = time.perf_counter()
        item_of(library.catalog, item_id)
        return _text_response(searcher, SearchRequest(like=[item_id], k=k), start)

    @api.get(
        "/items/{item_id}/thumbnail",
        response_class=FileResponse,
        tags=["items"],
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(
        item_id: ItemIdPath,
        size: Annotated[
            Optional[int], Query(ge=1, le=2**31, description="Longer side wanted; rounded up to a served size.")
        ] = None,
    ) -> FileResponse:
        """A JPEG thumbnail (EXIF orientation applied; a video moment's: its frame), made once and cached on disk."""
        path = thumbs.get(item_of(library.catalog, item_id), thumbs.side_for(size))
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @api.get(
        "/items/{item_id}/file",
        response_class=FileResponse,
        tags=["items"],
        responses={
            200: {"content": {"image/*": {}, "video/*": {}}},
            206: {"description": "The byte range asked for."},
            416: {},
        },
    )
    def original(
        item_id: ItemIdPath,
        range: Annotated[
            Optional[str], Header(description="bytes=FIRST-LAST: part of the file (video players seek so).")
        ] = None,
    ) -> Response:
        """The original photo or video file, as indexed (404 once it changed: run xmr index), whole or a byte range."""
        record = item_of(library.catalog, item_id).record
        handle, status = open_original(record)  # checked on the descriptor that is then read
        headers = {"Accept-Ranges": "bytes", "Content-Disposition": _inline(PurePath(record.path).name)}
        try:
            span = byte_range(range, status.st_size)
        except RangeNotSatisfiableError:
            handle.close()
            return Response(status_code=416, headers={"Content-Range": f"bytes */{status.st_size}", **headers})
        if span is None:
            headers["Content-Length"] = str(status.st_size)
            return StreamingResponse(_chunks(handle, status.st_size), media_type=media_type(record), headers=headers)
        first, last = span
        handle.seek(first)
        headers.update(
            {"Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{status.st_size}"}
        )
        return StreamingResponse(_chunks(handle, last - first + 1), 206, media_type=media_type(record), headers=headers)


def _chunks(handle: BinaryIO, length: int, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """The first ``length`` bytes of an open file (its checked size) in chunks; closes it when done or when the client goes."""
    with handle:
        while length > 0 and (chunk := handle.read(min(chunk_size, length))):
            length -= len(chunk)
            yield chunk


def _inline(filename: str) -> str:
    """A Content-Disposition header showing ``filename`` inline (RFC 6266, as Starlette's FileResponse writes it)."""
    quoted = quote(filename)
    return f"inline; filename*=utf-8''{quoted}" if quoted != filename else f'inline; filename="{filename}"'


def _add_info_routes(api: APIRouter, library: "Library", config: ServeConfig, reranker: object) -> None:
    @api.get("/health", response_model=Health, tags=["library"])
    def health() -> Health:
        """Liveness: the server answers and the index is loaded."""
        return Health(status="ok", images=len(library.images.index))

    @api.get("/info", response_model=InfoOut, tags=["library"])
    def info() -> InfoOut:
        """Counts, model and index of the library, the reranker, and this server's limits."""
        data = library.info().to_json()
        limits = Limits(
            max_k=config.max_k,
            max_offset=config.max_offset,
            max_terms=config.max_terms,
            max_query_chars=config.max_query_chars,
            max_upload_bytes=config.max_upload_bytes,
            max_pixels=config.max_pixels,
            thumb_sides=list(config.thumb_sides),
        )
        keep = {k: v for k, v in data.items() if k in InfoOut.model_fields}
        return InfoOut.model_validate(
            {
                **keep,
                "reranker": str(getattr(reranker, "name", None) or config.reranker or type(reranker).__name__)
                if reranker is not None
                else None,
                "limits": limits,
            }
        )


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_static_text("index.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(favicon_ico(), media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:  # a fixed set: no request names a file
            return JSONResponse({"detail": "not found"}, status_code=404)
        return Response(_static_text(name), media_type=STATIC[name])


@functools.cache
def favicon_ico() -> bytes:
    """The page's icon, a magnifier on the accent blue, drawn once (16 and 32 px in one .ico)."""
    from PIL import Image, ImageDraw

    side = 64  # drawn large, scaled down by the ICO writer
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, side - 1, side - 1), radius=14, fill=(37, 99, 235, 255))
    draw.ellipse((12, 10, 42, 40), outline=(255, 255, 255, 255), width=6)
    draw.line((38, 36, 52, 52), fill=(255, 255, 255, 255), width=8)
    out = io.BytesIO()
    image.save(out, format="ICO", sizes=[(16, 16), (32, 32)])
    return out.getvalue()


def _static_text(name: str) -> str:
    # one name per joinpath: Python 3.10's Traversable takes a single child
    return resources.files("retrieval.serve").joinpath("static").joinpath(name).read_text("utf-8")
