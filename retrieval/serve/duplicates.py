"""``GET /api/duplicates`` and the ``/duplicates`` page: the library's duplicate groups, for review.

Finding the groups reads every vector (minutes at 100,000 images on two cores), so the
last answer is kept per catalog generation and settings: the page's paging, and anyone
asking again before the library changes, get it at once. Read-only, like the command.
"""

import threading
from typing import TYPE_CHECKING, Annotated, Optional

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from retrieval.results import DuplicateReport
from retrieval.search.duplicates import TIERS, DuplicateConfig

if TYPE_CHECKING:
    from retrieval.library import Library
# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

__all__ = ["DuplicatesOut", "add_duplicate_routes"]


class DuplicateMemberOut(BaseModel):
    id: int
    path: str
    name: str
    relation: str = Field(description='"keeper", or how it relates to the keeper: "exact", "near" or "similar".')
    score: float = Field(description="Cosine similarity of its vector and the keeper's.")
    bits: Optional[int] = Field(description="Perceptual hashes' differing bits (of 63) with the keeper.")
    width: Optional[int] = None
    height: Optional[int] = None
    size: int
    format: Optional[str] = None
    captured_at: Optional[str] = None
    thumbnail: str
    file: str


class DuplicateGroupOut(BaseModel):
    tier: str = Field(description='"exact", "near" or "similar".')
    keeper: int = Field(description="The id of the suggested keeper (the first member).")
    reason: str = Field(description="Why the keeper is suggested.")
    members: list[DuplicateMemberOut]


class DuplicatesOut(BaseModel):
    groups: list[DuplicateGroupOut]
    total: int = Field(description="Groups in all (this reply holds those from offset on, at most limit).")
    offset: int
    next_offset: Optional[int] = None
    images: int = Field(description="Indexed images compared.")
    without_hash: int = Field(description="Images without a perceptual hash yet (run xmr index on them once).")
    took_ms: float = Field(description="How long finding the groups took (0 when the kept answer was used).")


class _Kept:
    """The last report, keyed by catalog generation and settings; one search at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple = ()
        self.report: Optional[DuplicateReport] = None

    def get(self, library: "Library", config: DuplicateConfig) -> tuple[DuplicateReport, bool]:
        with self.lock:
            key = (library.catalog.generation(), config)
            if self.report is not None and key == self.key:
                return self.report, True
            self.report, self.key = library.duplicates(config), key
            return self.report, False


def _member(data: dict) -> DuplicateMemberOut:
    base = f"/api/items/{data['id']}"
    name = data["path"].rsplit("/", 1)[-1]
    return DuplicateMemberOut(**data, name=name, thumbnail=f"{base}/thumbnail", file=f"{base}/file")


def add_duplicate_routes(api: APIRouter, library: "Library", max_groups: int) -> None:
    """Add ``GET /duplicates`` to ``api`` (answers at most ``max_groups`` groups a page)."""
    kept = _Kept()

    @api.get("/duplicates", response_model=DuplicatesOut, tags=["library"])
    def duplicates(
        tier: Annotated[
            Optional[list[str]], Query(description=f"Tiers to find: {', '.join(TIERS)} (repeatable).")
        ] = None,
        min_score: Annotated[float, Query(ge=-1.0, le=1.0, description="similar: vectors at least this alike.")] = 0.95,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=max_groups)] = 50,
    ) -> DuplicatesOut:
        """Groups of duplicate images with a suggested keeper each; nothing is changed."""
        config = DuplicateConfig(similar_score=min_score, tiers=tuple(tier) if tier else TIERS)
        report, was_kept = kept.get(library, config)
        page = report.groups[offset : offset + limit]
        groups = [
            DuplicateGroupOut(
                tier=g.tier, keeper=g.keeper.id, reason=g.reason, members=[_member(m.to_json()) for m in g.members]
            )
            for g in page
        ]
        more = offset + limit < len(report.groups)
        return DuplicatesOut(
            groups=groups,
            total=len(report.groups),
            offset=offset,
            next_offset=offset + limit if more else None,
            images=report.images,
            without_hash=report.without_hash,
            took_ms=0.0 if was_kept else report.seconds * 1e3,
        )


def add_duplicates_page(app: FastAPI, page: str) -> None:
    """Serve the review page ``page`` (HTML text) at ``/duplicates``."""

    @app.get("/duplicates", response_class=HTMLResponse, include_in_schema=False)
    def duplicates_page() -> HTMLResponse:
        return HTMLResponse(page)
