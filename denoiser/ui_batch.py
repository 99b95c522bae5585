"""What the app's Batch tab does: many uploads (images and/or zips) in, one zip of results
and a per-file table out. A bad file is a row in the table, never the end of the batch.

The uploads are gathered into one staging folder (zips extracted safely, see archive.py),
`batch.denoise_files` does the work with its usual rules (outputs in each input's own format
and bit depth, folder tree mirrored), and files that are not images by name are added to the
table as failures so nothing the user sent goes unmentioned.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from .archive import ArchiveError, extract_zip, zip_folder
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


def denoise_batch(uploads: list | None, strength: float, model_path: str, backend: str = "auto",
                  max_pixels: int = MAX_PIXELS) -> tuple[str | None, list[list], str]:
    """(zip of results or None, table rows, summary line)."""
    if not uploads:
        raise user_error("Upload some images or a zip first.")
    dn = load_for_ui(model_path, backend)
    work = output_dir()
    staging, results_dir = work / "inputs", work / "denoised"
    staging.mkdir()
    problems = stage_uploads(uploads, staging)
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
    ok, failed = len(report.ok), sum(r.status == "failed" for r in results)
    summary = (f"{ok} denoised, {failed} failed, in {report.seconds:.1f} s with {dn.describe()}"
               + ("" if archive else ". Nothing to download."))
    return archive, table_rows(results, staging), summary
