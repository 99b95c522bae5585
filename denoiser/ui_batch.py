"""What the app's Batch tab does: many uploads (images and/or zips) in, one zip of results
and a per-file table out. A bad file is a row in the table, never the end of the batch.

The uploads are gathered into one staging folder (zips extracted safely, see archive.py),
`batch.denoise_files` does the work with its usual rules (outputs in each input's own format
and bit depth, folder tree mirrored), and files that are not images by name are added to the
table as failures so nothing the user sent goes unmentioned.

One batch is bounded by `BatchLimits`: a file count, a total of megapixels read from the
image headers before anything is decoded (a 2 MB zip of solid 6000x6000 PNGs would
otherwise be days of CPU), a wall-time limit, and the caller's presence: a batch whose
caller has gone stops between tiles. What is refused or left undone is a row of its own
and is named in the summary.
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
from PIL import Image

from .archive import ArchiveError, extract_zip, zip_folder
from .batch import BatchOptions, FileResult, denoise_files
from .imageio import is_image_path
from .ui_denoise import MAX_PIXELS, load_for_ui, output_dir, upload_path

TABLE_HEADERS = ["file", "status", "pixels", "output KB", "seconds", "reason"]


def _unique(path: Path) -> Path:
    """`path`, or `name (2).ext`, ... so two uploads with one name both arrive."""
    if not path.exists():
        return path
    k = 2
    while (candidate := path.with_name(f"{path.stem} ({k}){path.suffix}")).exists():
        k += 1
    return candidate


def stage_uploads(uploads: list, staging: Path) -> list[FileResult]:
    """Copy images and extract zips into `staging`; return failures found on the way."""
    problems: list[FileResult] = []
    for item in uploads:
        src = Path(upload_path(item))
        name = item.get("orig_name") if isinstance(item, dict) and item.get("orig_name") else src.name
        if src.suffix.lower() == ".zip":
            try:
                got = extract_zip(src, _unique(staging / Path(name).stem))
            except ArchiveError as e:
                problems.append(FileResult(name, None, "failed", str(e)))
                continue
            problems += [FileResult(f"{name}/{member}", None, "failed", why) for member, why in got.refused]
        else:
            shutil.copyfile(src, _unique(staging / Path(name).name))
    return problems


def _pixels(path: str | None) -> str:
    if not path:
        return ""
    try:
        with Image.open(path) as im:
            return f"{im.width}x{im.height}"
    except OSError:
        return ""


def table_rows(results: list[FileResult], staging: Path) -> list[list]:
    def shown(p: str) -> str:
        try:
            return Path(p).relative_to(staging).as_posix()
        except ValueError:
            return p

    rows = []
    for r in results:
        kb = round(Path(r.output).stat().st_size / 1024, 1) if r.status == "ok" and r.output else None
        reason = r.reason.replace(str(staging) + "/", "")  # name the file as the user sent it
        rows.append([shown(r.input), r.status, _pixels(r.output if r.status == "ok" else None), kb,
                     round(r.seconds, 3), reason])
    return rows


@dataclass(frozen=True)
class BatchLimits:
    """What one Batch call may cost. The server is shared: two calls must not hold it for days."""

    max_files: int = 2000
    max_megapixels: float = 250.0  # all images of the batch together, read from their headers
    max_seconds: float = 900.0  # wall time; files not reached by then are reported as not done
    workers: int = 1  # decode/encode threads: one image read ahead keeps a batch to a few images in memory


class BatchStopped(Exception):
    """Raised from the pipeline's progress callbacks to end a batch early (not an error type
    the pipeline catches per file, so it ends the whole run)."""


def header_megapixels(path: Path) -> float | None:
    """The image's size from its header, without decoding it; None if the header is unreadable
    (the reader then refuses the file itself, at the same first step)."""
    try:
        with warnings.catch_warnings():  # a huge size is the reader's to refuse, not a warning in the log
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.width * im.height / 1e6
    except Exception:  # crafted headers make Pillow raise anything; the reader reports them
        return None


def refuse_over_budget(images: list[Path], budget_mp: float, max_pixels: int) -> list[FileResult]:
    """Take each image, in order, if it fits in what is left of `budget_mp`; delete the others
    from staging and return them as refused rows. Files over the per-image limit are left for the reader to
    refuse (they cost nothing) and so do not count."""
    left, refused = budget_mp, []
    for p in images:
        mp = header_megapixels(p)
        if mp is None or mp * 1e6 > max_pixels:
            continue
        if mp <= left:
            left -= mp
            continue
        refused.append(FileResult(str(p), None, "refused",
                                  f"{mp:.1f} MP is over what is left of the batch's {budget_mp:g} MP budget "
                                  f"({left:.1f} MP): send it in another batch"))
        p.unlink(missing_ok=True)
    return refused


class Stopper:
    """Ends a batch at its time limit or when its caller has gone: the pipeline calls `check`
    after each file and between the tiles of a large image."""

    def __init__(self, max_seconds: float, caller_gone: Callable[[], bool] | None = None):
        self.deadline, self.max_seconds = time.monotonic() + max_seconds, max_seconds
        self.caller_gone = caller_gone or (lambda: False)
        self.reason = ""

    def check(self, *_) -> None:
        if self.caller_gone():
            self.reason = "the batch was cancelled: its caller left"
        elif time.monotonic() > self.deadline:
            self.reason = f"the batch reached its time limit of {self.max_seconds:g} s"
        if self.reason:
            raise BatchStopped(self.reason)


def run_bounded(dn, staging: Path, results_dir: Path, opts: BatchOptions, stopper: Stopper,
                images: list[Path]) -> tuple[list[FileResult], float]:
    """denoise_files over `staging`, stopped early by `stopper`; (results, seconds). Images not
    reached are rows with the stopper's reason, and outputs written while it stopped but not
    reported are removed, so the zip holds exactly the rows marked ok."""
    done: list[FileResult] = []

    def progress(_i: int, _n: int, result: FileResult) -> None:
        done.append(result)
        stopper.check()

    t0 = time.perf_counter()
    try:
        stopper.check()
        return denoise_files(dn, [str(staging)], results_dir, opts, progress, stopper.check).results, \
            time.perf_counter() - t0
    except BatchStopped:
        pass
    reported = {r.input for r in done}
    done += [FileResult(str(p), None, "stopped", f"not done: {stopper.reason}") for p in images if str(p) not in reported]
    kept = {Path(r.output).resolve() for r in done if r.status == "ok" and r.output}
    for out in [p for p in results_dir.rglob("*") if p.is_file() and p.resolve() not in kept]:
        out.unlink(missing_ok=True)
    return sorted(done, key=lambda r: r.input), time.perf_counter() - t0


def summary_line(results: list[FileResult], seconds: float, model: str, limits: BatchLimits,
                 archive: str | None) -> str:
    count = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "refused", "stopped")}
    parts = [f"{count['ok']} denoised, {count['failed']} failed"]
    if count["refused"]:
        parts.append(f"{count['refused']} refused (over the {limits.max_megapixels:g} MP budget of one batch)")
    if count["stopped"]:
        reason = next(r.reason for r in results if r.status == "stopped").removeprefix("not done: ")
        parts.append(f"{count['stopped']} not done ({reason})")
    return (", ".join(parts) + f", in {seconds:.1f} s with {model}" + ("" if archive else ". Nothing to download."))


def denoise_batch(uploads: list | None, strength: float, model_path: str, backend: str = "auto",
                  max_pixels: int = MAX_PIXELS, limits: BatchLimits = BatchLimits(),
                  caller_gone: Callable[[], bool] | None = None) -> tuple[str | None, list[list], str]:
    """(zip of results or None, table rows, summary line). `caller_gone` says when to give up."""
    if not uploads:
        raise gr.Error("Upload some images or a zip first.")
    dn = load_for_ui(model_path, backend)
    stopper = Stopper(limits.max_seconds, caller_gone)  # the clock includes unpacking
    work = output_dir()
    staging, results_dir = work / "inputs", work / "denoised"
    staging.mkdir()
    problems = stage_uploads(uploads, staging)
    files = [p for p in sorted(staging.rglob("*")) if p.is_file()]
    if len(files) > limits.max_files:
        raise gr.Error(f"{len(files)} files is over the {limits.max_files}-file limit of one batch: split it up.")
    # Folders are walked for images by extension; anything else the user sent is reported here.
    problems += [FileResult(str(p), None, "failed", f"not an image file ({p.suffix or 'no extension'})")
                 for p in files if not is_image_path(p) and not p.name.startswith(".")]
    images = [p for p in files if is_image_path(p) and not any(s.startswith(".") for s in p.relative_to(staging).parts)]
    problems += refuse_over_budget(images, limits.max_megapixels, max_pixels)
    images = [p for p in images if p.exists()]
    opts = BatchOptions(recursive=True, strength=float(strength), max_pixels=max_pixels, workers=limits.workers)
    done, seconds = run_bounded(dn, staging, results_dir, opts, stopper, images)
    results = done + problems
    archive = None
    if any(r.status == "ok" for r in done):
        archive = str(zip_folder(results_dir, work / "denoised.zip"))
    return archive, table_rows(results, staging), summary_line(results, seconds, dn.describe(), limits, archive)
