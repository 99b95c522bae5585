"""What the app's Batch tab does: many uploads (images and/or zips) in, one zip of results
and a per-file table out. A bad file is a row in the table, never the end of the batch.

The uploads are gathered into one staging folder (zips extracted safely, see archive.py, all
files of the request within one byte budget), `batch.denoise_files` does the work with its usual
rules (outputs in each input's own format and bit depth, folder tree mirrored), and files that
are not images by name are added to the table as failures so nothing the user sent goes
unmentioned. When the batch ends, however it ends, the staged inputs and the unzipped results
are deleted: only the results' zip stays (for RESULTS_MAX_AGE_S).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from .archive import MAX_REQUEST_BYTES, ArchiveError, ByteBudget, extract_zip, zip_folder
from .batch import BatchOptions, FileResult, denoise_files
from .imageio import is_image_path
from .ui_denoise import MAX_PIXELS, load_for_ui, output_dir, upload_path
from .ui_messages import user_error

MAX_FILES = 2000
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


def denoise_batch(uploads: list | None, strength: float, model_path: str, backend: str = "auto",
                  max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_REQUEST_BYTES
                  ) -> tuple[str | None, list[list], str]:
    """(zip of results or None, table rows, summary line). `max_bytes`: what the request's
    files may take on disk once unpacked, all together."""
    if not uploads:
        raise user_error("Upload some images or a zip first.")
    dn = load_for_ui(model_path, backend)
    work = output_dir()
    staging, results_dir = work / "inputs", work / "denoised"
    staging.mkdir()
    try:
        problems = stage_uploads(uploads, staging, ByteBudget(max_bytes))
        files = [p for p in sorted(staging.rglob("*")) if p.is_file()]
        if len(files) > MAX_FILES:
            raise user_error(f"{len(files)} files is over the {MAX_FILES}-file limit of one batch: split it up.")
        # Folders are walked for images by extension; anything else the user sent is reported here.
        problems += [FileResult(str(p), None, "failed", f"not an image file ({p.suffix or 'no extension'})")
                     for p in files if not is_image_path(p) and not p.name.startswith(".")]
        opts = BatchOptions(recursive=True, strength=float(strength), max_pixels=max_pixels)
        report = denoise_files(dn, [str(staging)], results_dir, opts)
        results = report.results + problems
        archive = None
        if report.ok:
            archive = str(zip_folder(results_dir, work / "denoised.zip"))
        rows = table_rows(results, staging)
    finally:  # the inputs, and the results now in their zip, take no disk after the batch
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(results_dir, ignore_errors=True)
    ok, failed = len(report.ok), sum(r.status == "failed" for r in results)
    summary = (f"{ok} denoised, {failed} failed, in {report.seconds:.1f} s with {dn.describe()}"
               + ("" if archive else ". Nothing to download."))
    return archive, rows, summary
