"""What the app's Batch tab does: many uploads (images and/or zips) in, one zip of results
and a per-file table out. A bad file is a row in the table, never the end of the batch.

The uploads are gathered into one staging folder (zips extracted safely, see archive.py, all
files of the request within one byte budget), `batch.denoise_files` does the work with its usual
rules (outputs in each input's own format and bit depth, folder tree mirrored), and files that
are not images by name are added to the table as failures so nothing the user sent goes
unmentioned. When the batch ends, however it ends, the staged inputs and the unzipped results
are deleted: only the results' zip stays (for RESULTS_MAX_AGE_S).

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

from PIL import Image

from denoiser.app.archive import (
    MAX_REQUEST_BYTES,
    ArchiveError,
    ByteBudget,
    extract_zip,
    zip_folder,
)
from denoiser.app.denoise_tab import MAX_PIXELS, load_for_ui, output_dir, upload_path
from denoiser.app.messages import user_error
from denoiser.core.imageio import is_image_path
from denoiser.run.batch import BatchOptions, FileResult, denoise_files

TABLE_HEADERS = ["file", "status", "pixels", "output KB", "seconds", "reason"]


def _unique(path: Path) -> Path:
    """`path`, or `name (2).ext`, ... so two uploads with one name both arrive."""
    if not path.exists():
        return path
    k = 2
    while (candidate := path.with_name(f"{path.stem} ({k}){path.suffix}")).exists():
        k += 1
    return candidate


def _upload_name(item, src: Path) -> str:
    """The name the user's file had: one path part (the browser's name is the client's to choose)."""
    name = Path(str(item.get("orig_name") or "") if isinstance(item, dict) else "").name
    return name if name not in ("", ".", "..") and "\0" not in name else src.name


def stage_uploads(uploads: list, staging: Path, budget: ByteBudget | None = None) -> list[FileResult]:
    """Copy images and extract zips into `staging`, within `budget` (one request's bytes);
    return failures found on the way. An upload that fails leaves nothing in `staging`."""
    budget = budget if budget is not None else ByteBudget()
    problems: list[FileResult] = []
    for item in uploads:
        src = Path(upload_path(item))
        name = _upload_name(item, src)
        try:
            if src.suffix.lower() == ".zip":
                got = extract_zip(src, _unique(staging / Path(name).stem), budget=budget)
                problems += [FileResult(f"{name}/{member}", None, "failed", why) for member, why in got.refused]
            else:
                _copy_within(src, _unique(staging / name), budget, name)
        except ArchiveError as e:
            problems.append(FileResult(name, None, "failed", str(e)))
        except OSError as e:  # e.g. a name over 255 bytes: said without the server's folders
            problems.append(FileResult(name, None, "failed", f"cannot stage the upload: {e.strerror or e}"))
    return problems


def _copy_within(src: Path, dst: Path, budget: ByteBudget, name: str) -> None:
    size = src.stat().st_size
    budget.take(size, name)
    try:
        shutil.copyfile(src, dst)
    except BaseException:
        budget.give_back(size)
        dst.unlink(missing_ok=True)
        raise


def _pixels(path: str | None) -> str:
    if not path:
        return ""
    try:
        with Image.open(path) as im:
            return f"{im.width}x{im.height}"
    except OSError:
        return ""


def table_rows(results: list[FileResult], staging: Path) -> list[list]:
    """One row per result; files named as the user sent them, no server folder in any cell."""
    def shown(p: str) -> str:
        try:
            return Path(p).relative_to(staging).as_posix()
        except ValueError:
            return p

    rows = []
    for r in results:
        kb = round(Path(r.output).stat().st_size / 1024, 1) if r.status == "ok" and r.output else None
        reason = r.reason.replace(str(staging) + "/", "").replace(str(staging.parent) + "/", "")
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
                  max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_REQUEST_BYTES,
                  limits: BatchLimits = BatchLimits(), caller_gone: Callable[[], bool] | None = None
                  ) -> tuple[str | None, list[list], str]:
    """(zip of results or None, table rows, summary line). `max_bytes`: what the request's
    files may take on disk once unpacked, all together; `caller_gone` says when to give up."""
    if not uploads:
        raise user_error("Upload some images or a zip first.")
    dn = load_for_ui(model_path, backend)
    stopper = Stopper(limits.max_seconds, caller_gone)  # the clock includes unpacking
    work = output_dir()
    staging, results_dir = work / "inputs", work / "denoised"
    staging.mkdir()
    try:
        problems = stage_uploads(uploads, staging, ByteBudget(max_bytes))
        files = [p for p in sorted(staging.rglob("*")) if p.is_file()]
        if len(files) > limits.max_files:
            raise user_error(f"{len(files)} files is over the {limits.max_files}-file limit of one batch: split it up.")
        # Folders are walked for images by extension; anything else the user sent is reported here.
        problems += [FileResult(str(p), None, "failed", f"not an image file ({p.suffix or 'no extension'})")
                     for p in files if not is_image_path(p) and not p.name.startswith(".")]
        images = [p for p in files
                  if is_image_path(p) and not any(s.startswith(".") for s in p.relative_to(staging).parts)]
        problems += refuse_over_budget(images, limits.max_megapixels, max_pixels)
        images = [p for p in images if p.exists()]
        opts = BatchOptions(recursive=True, strength=float(strength), max_pixels=max_pixels, workers=limits.workers)
        done, seconds = run_bounded(dn, staging, results_dir, opts, stopper, images)
        results = done + problems
        archive = None
        if any(r.status == "ok" for r in done):
            archive = str(zip_folder(results_dir, work / "denoised.zip"))
        rows = table_rows(results, staging)
    finally:  # the inputs, and the results now in their zip, take no disk after the batch
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(results_dir, ignore_errors=True)
    return archive, rows, summary_line(results, seconds, dn.describe(), limits, archive)
