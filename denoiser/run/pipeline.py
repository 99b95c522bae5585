"""Overlap decoding, denoising and encoding: the batch CLI's inner loop.

Decoding and encoding (PNG/TIFF deflate, JPEG) run in two small thread pools while the
calling thread feeds the backend; ONNX Runtime, PyTorch and the image codecs release the GIL,
so the three stages really run at once. The backend is only ever called from this one
thread, and tiles of an image go to it in batches (tiling.py).

Memory stays bounded: at most `workers` images are decoded ahead and at most `workers`
outputs wait for their encoder, so a folder of huge photos holds a few images, not all.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from denoiser.core.imageio import ImageError, is_partial_output, read_image, write_image
from denoiser.run.jobs import BatchOptions, FileResult, Job, TileProgress

if TYPE_CHECKING:
    from denoiser.run.inference import Denoiser


def _reason(e: BaseException) -> str:
    if isinstance(e, FileExistsError):
        if e.filename and not is_partial_output(Path(e.filename)):  # making the output's folder met a file
            return f"cannot write in {e.filename}: it is a file, not a folder"
        return "output exists (it appeared during the run)"  # linking our temp file to the output's name
    if isinstance(e, OSError) and e.strerror:
        if e.filename and is_partial_output(Path(e.filename)):  # name the folder, not our temp file
            return f"{e.strerror}: cannot write in {Path(e.filename).parent}"
        return f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return str(e) or type(e).__name__


def run_pipeline(denoiser: Denoiser, jobs: list[Job], opts: BatchOptions,
                 record: Callable[[FileResult], None],
                 tile_progress: TileProgress | None = None) -> None:
    """Denoise every job; call `record` once per job with its result (in completion order), and
    `tile_progress(src, done, total, megapixels)` while a tiled image is denoised."""
    workers = max(1, opts.workers)
    todo = iter(jobs)
    decoding: deque[tuple[Job, float, Future]] = deque()
    encoding: deque[tuple[Job, float, float, Future]] = deque()

    def fail(job: Job, e: BaseException) -> None:
        record(FileResult(str(job.src), None, "failed", _reason(e)))

    def read_ahead() -> None:
        while len(decoding) < workers:
            job = next(todo, None)
            if job is None:
                return
            decoding.append((job, time.perf_counter(), readers.submit(read_image, job.src, opts.max_pixels)))

    def collect_writes(wait_all: bool) -> None:
        while encoding and (wait_all or len(encoding) > workers or encoding[0][3].done()):
            job, t0, mp, fut = encoding.popleft()
            try:
                fut.result()
            except Exception as e:  # read-only folder, full disk, encoder refusal: this file only
                fail(job, e)
                continue
            record(FileResult(str(job.src), str(job.dst), "ok", megapixels=mp,
                              seconds=round(time.perf_counter() - t0, 3)))

    readers = ThreadPoolExecutor(workers, thread_name_prefix="denoiser-decode")
    writers = ThreadPoolExecutor(workers, thread_name_prefix="denoiser-encode")
    try:
        read_ahead()
        while decoding:
            job, t0, fut = decoding.popleft()
            read_ahead()
            try:
                arr, info = fut.result()
                tiles = None
                if tile_progress:
                    def tiles(done: int, total: int, src=job.src, mp=arr.shape[0] * arr.shape[1] / 1e6) -> None:
                        tile_progress(src, done, total, mp)
                out = denoiser.denoise_array(arr, opts.strength, opts.sigma, tiles)
            except (ImageError, OSError, ValueError, RuntimeError, MemoryError) as e:
                fail(job, e)
                continue
            mp = arr.shape[0] * arr.shape[1] / 1e6
            del arr, fut  # the input's memory goes back before the next image is denoised
            encoding.append((job, t0, mp, writers.submit(write_image, job.dst, out, info, opts.quality,
                                                         exist_ok=opts.overwrite)))
            del out, info
            collect_writes(wait_all=False)
        collect_writes(wait_all=True)
    finally:
        # On Ctrl-C / SIGTERM: drop what has not started; writes in flight finish (atomically).
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)
