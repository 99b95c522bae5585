"""run/pipeline.py: decoding, denoising and encoding overlap in threads, yet the files written
are byte for byte those of doing each file in turn; every job gets exactly one result; a file
that fails to read, denoise or write is a failed row and the rest go on; the batch report
lists the files in input order with the error rows in their places."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoiser.core.imageio import read_image, write_image
from denoiser.run.batch import denoise_files
from denoiser.run.inference import Denoiser
from denoiser.run.jobs import BatchOptions, FileResult, Job
from denoiser.run.pipeline import run_pipeline

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def dn(tiny_onnx):
    # Small tiles: the larger images go through the tiled path (and report tile progress).
    return Denoiser.load(tiny_onnx, tile=32, memory_mb=1)


def make_inputs(folder: Path) -> list[Path]:
    """Files of several formats, depths and sizes (a big one first, so encodes lag behind)."""
    folder.mkdir()
    Image.fromarray(RNG.integers(0, 256, (150, 130, 3), dtype=np.uint8)).save(folder / "a_big.png")
    Image.fromarray(RNG.integers(0, 256, (24, 20), dtype=np.uint8)).save(folder / "b_gray.png")
    Image.fromarray(RNG.integers(0, 65536, (30, 26), dtype=np.uint16)).save(folder / "c_gray16.png")
    Image.fromarray(RNG.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(folder / "d_photo.jpg", quality=90)
    Image.fromarray(RNG.integers(0, 256, (20, 28, 4), dtype=np.uint8)).save(folder / "e_rgba.png")
    Image.fromarray(RNG.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(folder / "f_odd.webp", quality=80)
    return sorted(folder.iterdir())


def sequential(dn: Denoiser, jobs: list[Job], opts: BatchOptions) -> None:
    """The reference: each file read, denoised and written in turn, on one thread."""
    for job in jobs:
        arr, info = read_image(job.src, opts.max_pixels)
        write_image(job.dst, dn.denoise_array(arr, opts.strength, opts.sigma), info, opts.quality)


def run(dn: Denoiser, jobs: list[Job], opts: BatchOptions, tile_progress=None) -> list[FileResult]:
    results: list[FileResult] = []
    run_pipeline(dn, jobs, opts, results.append, tile_progress)
    return results


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_outputs_equal_the_sequential_path(dn, tmp_path, workers, strength):
    sources = make_inputs(tmp_path / "in")
    opts = BatchOptions(workers=workers, strength=strength, quality=90)
    jobs = [Job(src, tmp_path / "out" / src.name) for src in sources]
    expected = [Job(src, tmp_path / "ref" / src.name) for src in sources]
    (tmp_path / "out").mkdir()
    (tmp_path / "ref").mkdir()
    sequential(dn, expected, opts)
    results = run(dn, jobs, opts)
    assert sorted(r.input for r in results) == sorted(str(s) for s in sources)  # each job once
    assert all(r.status == "ok" for r in results), results
    for job, ref in zip(jobs, expected):
        assert job.dst.read_bytes() == ref.dst.read_bytes(), job.src.name
    by_input = {r.input: r for r in results}
    for job in jobs:
        r = by_input[str(job.src)]
        assert r.output == str(job.dst) and r.seconds >= 0
        h, w = np.asarray(Image.open(job.src)).shape[:2]
        assert r.megapixels == pytest.approx(h * w / 1e6)


def test_a_failing_file_does_not_stop_the_rest(dn, tmp_path):
    """Failures at each stage, between good files: unreadable, missing, unwritable, and an output
    that appeared during the run (never replaced)."""
    good = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    corrupt = tmp_path / "in" / "corrupt.png"
    corrupt.write_bytes(good[1].read_bytes()[:100])
    (out / "not a folder").write_text("a file where a folder should be")
    (out / "appeared.png").write_text("written by someone else meanwhile")
    jobs = [Job(good[0], out / "0.png"), Job(corrupt, out / "corrupt.png"), Job(good[1], out / "1.png"),
            Job(tmp_path / "in" / "missing.png", out / "missing.png"), Job(good[2], out / "not a folder" / "2.png"),
            Job(good[3], out / "appeared.png"), Job(good[4], out / "4.png"), Job(good[5], out / "5.webp")]
    results = {r.input: r for r in run(dn, jobs, BatchOptions(workers=2))}
    assert len(results) == len(jobs)  # one result per job, none lost or doubled
    status = {Path(job.dst).name: results[str(job.src)] for job in jobs}
    for name in ["0.png", "1.png", "4.png", "5.webp"]:
        assert status[name].status == "ok" and (out / name).is_file()
    assert status["corrupt.png"].status == "failed" and "not a readable image" in status["corrupt.png"].reason
    assert status["missing.png"].status == "failed" and status["missing.png"].reason
    assert status["2.png"].status == "failed"
    assert status["2.png"].reason == f"cannot write in {out / 'not a folder'}: it is a file, not a folder"
    assert status["appeared.png"].status == "failed"
    assert status["appeared.png"].reason == "output exists (it appeared during the run)"
    assert (out / "appeared.png").read_text() == "written by someone else meanwhile"
    assert all(r.output is None for r in results.values() if r.status == "failed")
    assert not list(out.rglob("*.part")), "no temp file left behind"


def test_tile_progress_counts_each_tiled_image_to_its_end(dn, tmp_path):
    sources = make_inputs(tmp_path / "in")
    (tmp_path / "out").mkdir()
    seen: dict[Path, list[tuple[int, int, float]]] = {}
    jobs = [Job(src, tmp_path / "out" / src.name) for src in sources]
    run(dn, jobs, BatchOptions(workers=2), lambda src, done, total, mp: seen.setdefault(src, []).append((done, total, mp)))
    big = sources[0]
    assert big in seen, "the 150x130 image is cut into 32 px tiles"
    for src, calls in seen.items():
        done = [d for d, _, _ in calls]
        total = calls[0][1]
        assert total > 1 and done == sorted(done) and done[-1] == total and {t for _, t, _ in calls} == {total}
        h, w = np.asarray(Image.open(src)).shape[:2]
        assert all(mp == pytest.approx(h * w / 1e6) for _, _, mp in calls)


def test_report_keeps_input_order_with_error_rows_in_place(dn, tmp_path):
    """Results arrive in completion order (a decode failure is known before an earlier file's
    encode ends); the batch report puts them back in input order."""
    sources = make_inputs(tmp_path / "in")
    for name in ["b_bad.png", "d_bad.jpg"]:
        (tmp_path / "in" / name).write_text("not an image")
    arrived: list[str] = []
    report = denoise_files(dn, [str(tmp_path / "in")], tmp_path / "out", BatchOptions(workers=3),
                           progress=lambda i, n, r: arrived.append(r.input))
    names = [Path(r.input).name for r in report.results]
    assert names == sorted(p.name for p in (tmp_path / "in").iterdir())
    assert sorted(arrived) == sorted(r.input for r in report.results)
    assert [n for n, r in zip(names, report.results) if r.status == "failed"] == ["b_bad.png", "d_bad.jpg"]
    assert len(report.ok) == len(sources)
