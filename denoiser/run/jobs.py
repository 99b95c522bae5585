"""The batch job types: what a batch run is asked (`BatchOptions`), one file to do (`Job`) and
what became of it (`FileResult`).

They live apart from `batch.py` (which plans the run) and `pipeline.py` (which does the jobs)
because both use them: here neither has to import the other's module to name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from denoiser.core.imageio import DEFAULT_MAX_PIXELS

TileProgress = Callable[[Path, int, int, float], None]  # (input, tiles done, tiles in all, its megapixels)


@dataclass(frozen=True)
class BatchOptions:
    recursive: bool = False
    suffix: str = ""  # appended to output stems, e.g. "_denoised"
    format: str | None = None  # output format (png, jpg, tif, webp, bmp); default: the input's
    quality: int = 95  # JPEG/WebP; 100 = lossless WebP
    strength: float = 1.0
    sigma: float | None = None  # only for models that take a noise level
    skip_existing: bool = False
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 2  # decode threads and encode threads, each
    shard: tuple[int, int] = (0, 1)  # (index, count)


@dataclass
class FileResult:
    input: str
    output: str | None
    status: str  # ok | skipped | failed
    reason: str = ""
    megapixels: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
