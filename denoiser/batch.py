"""Batch-denoise files and folders without ever losing anything.

Rules: an input is never overwritten (an output folder that holds inputs needs a name
suffix); outputs are written atomically (temp file + rename), so a killed run leaves no
half-written file; a bad file is reported and skipped while the rest go on; the caller gets
a report with every failure and its reason.
"""

from __future__ import annotations

import glob
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .imageio import DEFAULT_MAX_PIXELS, EXTENSION_BY_FORMAT, FORMAT_BY_EXTENSION, ImageError, is_image_path, read_image, write_image
from .inference import Denoiser


@dataclass(frozen=True)
class BatchOptions:
    recursive: bool = False
    suffix: str = ""  # appended to output stems, e.g. "_denoised"
    format: str | None = None  # output format (png, jpg, tif, webp, bmp); default: the input's
    quality: int = 95
    strength: float = 1.0
    skip_existing: bool = False
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class FileResult:
    input: str
    output: str | None
    status: str  # ok | skipped | failed
    reason: str = ""
    megapixels: float = 0.0
    seconds: float = 0.0


@dataclass
class BatchReport:
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "ok"]

    def summary(self) -> str:
        mp = sum(r.megapixels for r in self.ok)
        skipped = sum(r.status == "skipped" for r in self.results)
        lines = [f"{len(self.ok)} denoised, {skipped} skipped, {len(self.failed)} failed; "
                 f"{mp:.1f} MP in {self.seconds:.1f} s ({mp / max(self.seconds, 1e-9):.2f} MP/s)"]
        lines += [f"  FAILED {r.input}: {r.reason}" for r in self.failed]
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        data = {"seconds": self.seconds, "files": [asdict(r) for r in self.results]}
        Path(path).write_text(json.dumps(data, indent=2))


def collect_inputs(inputs: list[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[FileResult]]:
    """Expand files, folders and globs into (file, relative output path) pairs, plus errors."""
    found: list[tuple[Path, Path]] = []
    errors: list[FileResult] = []
    for item in inputs:
        paths = [Path(p) for p in sorted(glob.glob(item))] if glob.has_magic(item) else [Path(item)]
        if not paths:
            errors.append(FileResult(item, None, "failed", "no file matches this pattern"))
        for p in paths:
            if p.is_dir():
                walker = p.rglob("*") if recursive else p.iterdir()
                found += [(f, f.relative_to(p)) for f in sorted(walker)
                          if f.is_file() and is_image_path(f) and not f.name.startswith(".")]
            elif p.is_file():
                found.append((p, Path(p.name)))
            else:
                errors.append(FileResult(str(p), None, "failed", "no such file or folder"))
    return found, errors


def output_path(rel: Path, out_dir: Path, opts: BatchOptions) -> Path:
    suffix = rel.suffix
    if opts.format:
        suffix = EXTENSION_BY_FORMAT[FORMAT_BY_EXTENSION["." + opts.format.lower().lstrip(".")]]
    return out_dir / rel.with_name(rel.stem + opts.suffix + suffix)


def check_output_dir(out_dir: Path, files: list[tuple[Path, Path]], opts: BatchOptions) -> None:
    """Refuse a plan that would write over any input."""
    inputs = {f.resolve() for f, _ in files}
    for f, rel in files:
        if output_path(rel, out_dir, opts).resolve() in inputs:
            raise ValueError(f"output {output_path(rel, out_dir, opts)} would overwrite an input: "
                             "choose another output folder or give a name suffix (--suffix _denoised)")


def denoise_files(denoiser: Denoiser, inputs: list[str], out_dir: str | Path, opts: BatchOptions = BatchOptions(),
                  progress: Callable[[int, int, FileResult], None] | None = None) -> BatchReport:
    out_dir = Path(out_dir)
    t0 = time.time()
    files, errors = collect_inputs(inputs, opts.recursive)
    check_output_dir(out_dir, files, opts)
    report = BatchReport(results=list(errors))
    for i, (src, rel) in enumerate(files):
        dst = output_path(rel, out_dir, opts)
        result = _denoise_one(denoiser, src, dst, opts)
        report.results.append(result)
        if progress:
            progress(i + 1, len(files), result)
    report.seconds = time.time() - t0
    return report


def _denoise_one(denoiser: Denoiser, src: Path, dst: Path, opts: BatchOptions) -> FileResult:
    if dst.exists() and not opts.overwrite:
        if opts.skip_existing:
            return FileResult(str(src), str(dst), "skipped", "output exists")
        return FileResult(str(src), str(dst), "failed", "output exists (use --skip-existing or --overwrite)")
    t = time.time()
    try:
        arr, info = read_image(src, opts.max_pixels)
        out = denoiser.denoise_array(arr, opts.strength)
        write_image(dst, out, info, quality=opts.quality)
    except (ImageError, OSError) as e:
        return FileResult(str(src), None, "failed", str(e) or type(e).__name__)
    mp = arr.shape[0] * arr.shape[1] / 1e6
    return FileResult(str(src), str(dst), "ok", megapixels=mp, seconds=time.time() - t)
