"""How an index run reads and embeds files (:class:`IngestConfig`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from retrieval.images.decode import DecodeConfig
from retrieval.video.config import SampleConfig

__all__ = ["IngestConfig"]


@dataclass(frozen=True)
class IngestConfig:
    """How an index run reads and embeds files."""

    batch_size: int = 32  # images per encoder forward pass and per catalog transaction
    workers: int = 0  # decoder threads; 0 picks min(4, CPU count)
    prefetch_batches: int = 3  # decoded batches kept ready ahead of the encoder
    retry_failed: bool = False  # read files that failed before even if unchanged
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # decoding limits
    gpu_decode: str = "auto"  # "auto": JPEGs decoded in batches on the GPU when the encoder is on CUDA; "on"; "off"
    gpu_batch_size: int = 256  # images per batch on the GPU decode path (at least batch_size)
    commit_ahead: bool = True  # batch N's catalog transaction runs in a thread while batch N+1 is encoded
    video: SampleConfig = field(default_factory=SampleConfig)  # how videos are sampled into moments
    header_processes: int = (
        -1
    )  # GPU decode path: processes that hash files and parse headers; 0 none (threads do it); -1 auto

    def header_process_count(self, files: int) -> int:
        """Header processes for a GPU-decode run of ``files`` files.

        Auto: one per core beyond two, at most 8 (about 60 MiB each; 8 hash and parse
        well over 5,000 camera-sized JPEGs a second), on machines with four or more cores
        and runs of at least 1,000 files; a smaller run does not repay starting them.
        """
        if self.header_processes >= 0:
            return self.header_processes
        cores = os.cpu_count() or 1
        return min(8, cores - 2) if cores >= 4 and files >= 1000 else 0

    def __post_init__(self) -> None:
        if self.gpu_decode not in ("auto", "on", "off"):
            raise ValueError(f"gpu_decode must be 'auto', 'on' or 'off', not {self.gpu_decode!r}")

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else min(4, os.cpu_count() or 1)
