"""Batch-denoise files and folders without ever losing anything.

Rules: an input is never overwritten (an output folder that holds inputs needs a name
suffix); outputs are written atomically (temp file + rename), so a killed run leaves no
half-written file under an output name; a bad file is reported and skipped while the rest
go on; the caller gets a report with every failure and its reason.

Scale-out: the plan (every input and its output name) is the same in every process, and
`--shard i/n` (or torchrun's RANK/WORLD_SIZE) keeps every n-th entry of it, so n processes
together cover each input exactly once. Decoding, denoising and encoding overlap in
`pipeline.py`; the job types both use live in `jobs.py`.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from denoiser.core.imageio import (
    EXTENSION_BY_FORMAT,
    FORMAT_BY_EXTENSION,
    is_image_path,
    is_partial_output,
)
from denoiser.run.inference import Denoiser
from denoiser.run.jobs import BatchOptions, FileResult, Job, TileProgress
from denoiser.run.pipeline import run_pipeline


@dataclass
class BatchReport:
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""
    shard: tuple[int, int] = (0, 1)
    earlier_outputs: int = 0  # files left out as an earlier run's outputs (see `is_earlier_output`)
    suffix: str = ""

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "ok"]

    def totals(self) -> dict:
        mp = sum(r.megapixels for r in self.ok)
        return {"files": len(self.results), "ok": len(self.ok), "failed": len(self.failed),
                "skipped": sum(r.status == "skipped" for r in self.results), "megapixels": round(mp, 3),
                "seconds": round(self.seconds, 3), "megapixels_per_s": round(mp / max(self.seconds, 1e-9), 4)}

    def summary(self) -> str:
        t = self.totals()
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        lines = [f"{t['files']} files{shard}: {t['ok']} denoised, {t['skipped']} skipped, {t['failed']} failed; "
                 f"{t['megapixels']:.1f} MP in {t['seconds']:.1f} s ({t['megapixels_per_s']:.2f} MP/s)"]
        if self.earlier_outputs:
            lines.append(f"left out {self.earlier_outputs} file(s) ending in {self.suffix}: outputs of an earlier run")
        lines += [f"  FAILED {r.input}: {r.reason}" for r in self.failed]
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> Path:
        """Write the report; under sharding each shard gets its own file (NAME.shard-I-of-N.json)."""
        path = Path(path)
        if self.shard[1] > 1:
            path = path.with_name(f"{path.stem}.shard-{self.shard[0]}-of-{self.shard[1]}{path.suffix}")
        data = {"totals": self.totals(), "model": self.model, "shard": list(self.shard),
                "earlier_outputs_left_out": self.earlier_outputs, "files": [asdict(r) for r in self.results]}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        return path


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants INDEX/COUNT such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= INDEX < COUNT")
    return i, n


def shard_from_env() -> tuple[int, int]:
    """torchrun (and most launchers) export RANK and WORLD_SIZE; without them: (0, 1)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return parse_shard(f"{os.environ['RANK']}/{os.environ['WORLD_SIZE']}")
    return 0, 1


def is_earlier_output(f: Path, rel: Path, out_dir: Path, suffix: str) -> bool:
    """True for a file that lies just where this run would write an output of its name, and whose
    stem ends with the run's suffix: an output of an earlier run into the input folder, which
    must not come back as an input (and become NAME_dn_dn)."""
    return bool(suffix) and f.stem.endswith(suffix) and (out_dir / rel).resolve() == f.resolve()


def collect_inputs(inputs: list[str], recursive: bool, exclude: Path | None = None, suffix: str = "",
                   left_out: list[Path] | None = None) -> tuple[list[tuple[Path, Path]], list[FileResult]]:
    """Expand files, folders and globs into (file, output path relative to OUTDIR), plus errors.

    Folders and globs yield image files only (by extension; hidden files skipped); a file named
    explicitly is always tried. `exclude` (the output folder) is never walked into, so outputs
    are not taken for inputs on a second run. The order is stable: inputs in the order given,
    each expanded in sorted order; a file met twice is kept once. (An OUTDIR equal to an input
    folder is not excluded here: `check_output_dir` refuses it unless there is a suffix.) With
    a `suffix` and `exclude`, files of folders and globs that are earlier outputs (`is_earlier_output`)
    are left out and appended to `left_out`.
    """
    found: list[tuple[Path, Path]] = []
    errors: list[FileResult] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude else None

    def add(f: Path, rel: Path, root: Path | None = None, expanded: bool = True) -> None:
        if expanded and exclude is not None and is_earlier_output(f, rel, exclude, suffix):
            if left_out is not None and f not in left_out:
                left_out.append(f)
            return
        key = f.resolve()
        inside_outdir = skip is not None and root is not None and skip != root and key.is_relative_to(skip)
        if key not in seen and not inside_outdir:
            seen.add(key)
            found.append((f, rel))

    for item in inputs:
        magic = glob.has_magic(item)
        paths = [Path(p) for p in sorted(glob.glob(item, recursive=True))] if magic else [Path(item)]
        if not paths:
            errors.append(FileResult(item, None, "failed", "no file matches this pattern"))
        for p in paths:
            if p.is_dir():
                walker = p.rglob("*") if recursive else p.iterdir()
                root = p.resolve()
                for f in sorted(walker):
                    rel = f.relative_to(p)
                    if f.is_file() and is_image_path(f) and not any(part.startswith(".") for part in rel.parts):
                        add(f, rel, root)
            elif p.is_file():
                if not magic or is_image_path(p):
                    add(p, Path(p.name), expanded=magic)  # a file named explicitly is always tried
            else:
                errors.append(FileResult(str(p), None, "failed", "no such file or folder"))
    return found, errors


def output_path(rel: Path, out_dir: Path, opts: BatchOptions) -> Path:
    suffix = rel.suffix
    if opts.format:
        fmt = FORMAT_BY_EXTENSION.get("." + opts.format.lower().lstrip("."))
        if fmt is None:
            raise ValueError(f"unknown output format {opts.format!r}")
        suffix = EXTENSION_BY_FORMAT[fmt]
    return out_dir / rel.with_name(rel.stem + opts.suffix + suffix)


def check_output_dir(out_dir: Path, files: list[tuple[Path, Path]], opts: BatchOptions) -> None:
    """Refuse a plan that would write over any input, or into an input's folder without a suffix,
    and an output folder that is (or lies under) a file."""
    for p in (out_dir, *out_dir.parents):
        if p.exists():
            if not p.is_dir():
                raise ValueError(f"output folder {out_dir} is a file, not a folder" if p == out_dir else
                                 f"output folder {out_dir}: {p} is a file, not a folder")
            break
    inputs = {f.resolve() for f, _ in files}
    for f, rel in files:
        dst = output_path(rel, out_dir, opts)
        if dst.resolve() in inputs:
            raise ValueError(f"output {dst} would overwrite an input: choose another output folder "
                             "or another name suffix")
        if not opts.suffix and dst.parent.resolve() == f.parent.resolve():
            raise ValueError(f"output folder {dst.parent} holds the input {f.name}: give a name suffix "
                             "(--suffix _denoised) or choose another output folder")


def plan(inputs: list[str], out_dir: str | Path, opts: BatchOptions, left_out: list[Path] | None = None
         ) -> tuple[list[Job], list[FileResult]]:
    """This shard's jobs, plus results decided before any decoding (errors, clashes, existing).
    Earlier outputs left out of the inputs (see `collect_inputs`) go to `left_out`."""
    out_dir = Path(out_dir)
    files, errors = collect_inputs(inputs, opts.recursive, exclude=out_dir, suffix=opts.suffix, left_out=left_out)
    check_output_dir(out_dir, files, opts)
    index, count = opts.shard
    claimed: dict[Path, Path] = {}
    jobs: list[Job] = []
    decided: list[FileResult] = list(errors) if index == 0 else []  # reported once, by shard 0
    for k, (src, rel) in enumerate(files):
        dst = output_path(rel, out_dir, opts)
        first = claimed.setdefault(dst.resolve(), src)  # decided over all files: same answer in every shard
        if k % count != index:
            continue
        if first != src:
            decided.append(FileResult(str(src), None, "failed", f"same output name {dst} as {first}; "
                                      "use --recursive to mirror folders or rename one"))
        elif dst.exists() and not opts.overwrite:
            if opts.skip_existing:
                decided.append(FileResult(str(src), str(dst), "skipped", "output exists"))
            else:
                decided.append(FileResult(str(src), str(dst), "failed",
                                          "output exists (use --skip-existing or --overwrite)"))
        else:
            jobs.append(Job(src, dst))
    return jobs, decided


def remove_partial_outputs(jobs: list[Job]) -> int:
    """Delete temp files a killed earlier run left for these outputs (only our own naming)."""
    removed = 0
    for job in jobs:
        for p in job.dst.parent.glob(f".{glob.escape(job.dst.name)}.*.part"):
            if is_partial_output(p):
                p.unlink(missing_ok=True)
                removed += 1
    return removed


def denoise_files(denoiser: Denoiser, inputs: list[str], out_dir: str | Path, opts: BatchOptions = BatchOptions(),
                  progress: Callable[[int, int, FileResult], None] | None = None,
                  tile_progress: TileProgress | None = None) -> BatchReport:
    """Denoise `inputs` into `out_dir`. `progress(i, n, result)` is called per file;
    `tile_progress(src, tiles_done, tiles_total, megapixels)` within each tiled image."""
    t0 = time.perf_counter()
    denoiser.check_sigma(opts.sigma)  # a wrong --sigma fails once, not once per file
    left_out: list[Path] = []
    jobs, decided = plan(inputs, out_dir, opts, left_out)
    remove_partial_outputs(jobs)
    report = BatchReport(model=denoiser.describe(), shard=opts.shard, earlier_outputs=len(left_out),
                         suffix=opts.suffix)
    total = len(jobs) + len(decided)

    def record(result: FileResult) -> None:
        report.results.append(result)
        if progress:
            progress(len(report.results), total, result)

    for result in decided:
        record(result)
    run_pipeline(denoiser, jobs, opts, record, tile_progress)
    order = {str(job.src): k for k, job in enumerate(jobs)}  # the report lists jobs in input order
    report.results[len(decided):] = sorted(report.results[len(decided):], key=lambda r: order[r.input])
    report.seconds = time.perf_counter() - t0
    return report
