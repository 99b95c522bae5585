"""The Batch tab's handler with a real model: images and zips in, a zip of results (each in
its own format and bit depth, folders mirrored) and a per-file table out; bad files are rows,
not the end of the batch."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from denoiser.core.imageio import ImageInfo, read_image, write_image
from denoiser.run.inference import Denoiser


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def test_batch_of_images_and_zips_lists_failures_and_zips_results(tiny_checkpoint, tmp_path):
    from denoiser.app.batch_tab import TABLE_HEADERS, denoise_batch

    src = tmp_path / "uploads"
    src.mkdir()
    clean, _ = read_image(DATA / "astronaut.png")
    photo = write_image(src / "photo.jpg", clean[:64, :64], ImageInfo(format="JPEG"))
    deep = write_image(src / "deep.png", clean[:48, :40], ImageInfo(bits=16))
    (src / "notes.txt").write_text("not an image")
    with zipfile.ZipFile(src / "scans.zip", "w") as zf:
        zf.write(DATA / "camera.png", "box1/camera.png")
        zf.write(DATA / "camera.png", "box2/camera.png")  # same name in another folder: both kept
        zf.writestr("box1/broken.png", b"\x89PNG\r\n\x1a\n not really")
        zf.writestr("../escape.png", b"x")
    (src / "fake.zip").write_text("not a zip")
    uploads = [str(p) for p in (photo, deep, src / "notes.txt", src / "scans.zip", src / "fake.zip")]

    archive, rows, summary = denoise_batch(uploads, 1.0, str(tiny_checkpoint), "torch")

    table = {row[0]: dict(zip(TABLE_HEADERS, row)) for row in rows}
    ok = {name for name, r in table.items() if r["status"] == "ok"}
    assert ok == {"photo.jpg", "deep.png", "scans/box1/camera.png", "scans/box2/camera.png"}
    failed = {name: r["reason"] for name, r in table.items() if r["status"] == "failed"}
    assert set(failed) == {"notes.txt", "scans/box1/broken.png", "scans.zip/../escape.png", "fake.zip"}
    assert "not an image" in failed["notes.txt"] and "not a readable zip" in failed["fake.zip"]
    assert "unsafe path" in failed["scans.zip/../escape.png"]
    assert table["deep.png"]["pixels"] == "40x48" and table["deep.png"]["output KB"] > 0
    assert "4 denoised, 4 failed" in summary
    assert not [row for row in rows if str(tmp_path) in row[-1]]  # reasons name files, not server folders

    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["deep.png", "photo.jpg", "scans/box1/camera.png", "scans/box2/camera.png"]
        zf.extractall(tmp_path / "results")
    out, info = read_image(tmp_path / "results" / "deep.png")
    assert info.bits == 16 and out.shape == (48, 40, 3)
    arr, _ = read_image(deep)
    want = Denoiser.load(tiny_checkpoint, backend="torch").denoise_array(arr)
    assert np.abs(out - want).max() <= 0.51 / 65535
    assert read_image(tmp_path / "results" / "photo.jpg")[1].format == "JPEG"


def test_empty_batch_gets_a_clear_message(tiny_checkpoint):
    import gradio as gr

    from denoiser.app.batch_tab import denoise_batch

    with pytest.raises(gr.Error, match="Upload some images or a zip first"):
        denoise_batch([], 1.0, str(tiny_checkpoint), "torch")


def zip_of(path, members: dict[str, bytes], deflate: bool = True):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_disk_is_bounded_per_request_and_freed_when_the_batch_ends(tiny_checkpoint, tmp_path):
    """The issue's bombs, scaled down: each refused zip leaves nothing; the budget counts over
    all files of the request; inputs and unzipped results are gone once the batch is done."""
    from denoiser.app.batch_tab import TABLE_HEADERS, denoise_batch

    png = (DATA / "camera.png").read_bytes()
    src = tmp_path / "uploads"
    src.mkdir()
    bombs = [zip_of(src / f"bomb{k}.zip", {"ok.png": png, **{f"z{i}.bin": b"\0" * (1 << 20) for i in range(3)}})
             for k in (1, 2)]
    halves = [zip_of(src / f"half{k}.zip", {f"h{k}.png": png, "pad.bin": b"\0" * (1 << 20)}) for k in (1, 2)]
    uploads = [str(p) for p in (*bombs, *halves)]
    budget = 2 << 20  # each bomb alone is over it; one half fits, not both

    archive, rows, summary = denoise_batch(uploads, 1.0, str(tiny_checkpoint), "torch", max_bytes=budget)

    table = {row[0]: dict(zip(TABLE_HEADERS, row)) for row in rows}
    for name in ("bomb1.zip", "bomb2.zip"):
        assert "expands to more than 2.0 MiB; the limit" in table[name]["reason"]
    assert "with the other files of this request" in table["half2.zip"]["reason"]
    assert table["half1/h1.png"]["status"] == "ok" and "not an image" in table["half1/pad.bin"]["reason"]
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["half1/h1.png"]
    left = [p.relative_to(tmp_path / "gradio").as_posix() for p in (tmp_path / "gradio").rglob("*") if p.is_file()]
    assert left == [str(Path(archive).relative_to(tmp_path / "gradio").as_posix())]  # only the results' zip


def test_odd_names_in_zips_and_uploads_are_rows_without_server_paths(tiny_checkpoint, tmp_path):
    from denoiser.app.batch_tab import TABLE_HEADERS, denoise_batch

    png = (DATA / "camera.png").read_bytes()
    long_part = "y" * 300
    odd = zip_of(tmp_path / "odd.zip", {"a.png": png, "a.png/b.png": png, f"{long_part}.png": png,
                                        f"{long_part}/c.png": png, "fine.png": png}, deflate=False)
    with zipfile.ZipFile(odd, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("fine.png", b"another file of the same name")
    plain = tmp_path / "upload.png"
    plain.write_bytes(png)
    uploads = [str(odd), {"path": str(plain), "orig_name": long_part + ".png"}, {"path": str(plain), "orig_name": ".."}]

    archive, rows, summary = denoise_batch(uploads, 1.0, str(tiny_checkpoint), "torch")

    table = {row[0]: dict(zip(TABLE_HEADERS, row)) for row in rows}
    assert {n for n, r in table.items() if r["status"] == "ok"} == {"odd/a.png", "odd/fine.png", "upload.png"}
    assert "also holds a file named a.png" in table["odd.zip/a.png/b.png"]["reason"]
    assert "duplicate name" in table["odd.zip/fine.png"]["reason"]
    for name in (f"odd.zip/{long_part}.png", f"odd.zip/{long_part}/c.png"):
        assert "longer than 255 bytes" in table[name]["reason"]
    assert "File name too long" in table[long_part + ".png"]["reason"]
    assert not [cell for row in rows for cell in row if str(tmp_path) in str(cell)]
    assert "3 denoised, 5 failed" in summary


def test_the_real_disk_limits_are_sane(tiny_checkpoint, tmp_path):
    from denoiser.app.archive import MAX_REQUEST_BYTES
    from denoiser.app.denoise_tab import RESULTS_MAX_AGE_S
    from denoiser.app.page import MAX_UPLOAD_MB, build_ui

    # a batch of twenty full-size uploads fits; a request cannot take more than a few GiB of disk
    assert 20 * MAX_UPLOAD_MB * 2**20 <= MAX_REQUEST_BYTES <= 4 << 30
    every, age = build_ui(tiny_checkpoint, runs_dir=tmp_path / "runs").delete_cache  # Gradio's upload cache
    assert 0 < every <= 3600 and 0 < age <= RESULTS_MAX_AGE_S


def test_a_model_that_cannot_be_used_is_named_without_its_server_folder(tmp_path):
    import gradio as gr

    from denoiser.app.batch_tab import denoise_batch

    (tmp_path / "garbage.onnx").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "in.png").write_bytes((DATA / "camera.png").read_bytes())
    with pytest.raises(gr.Error) as refused:
        denoise_batch([str(tmp_path / "in.png")], 1.0, str(tmp_path / "garbage.onnx"), "auto")
    assert "garbage.onnx: not a readable ONNX file" in refused.value.message
    assert str(tmp_path) not in refused.value.message


def solid_png_zip(path, count, side, extra=()):
    """A small zip of many large solid PNGs: kilobytes to send, megapixels to denoise."""
    from PIL import Image

    one = path.parent / "solid.png"
    Image.new("RGB", (side, side), (90, 120, 150)).save(one)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(count):
            zf.write(one, f"big_{k:03d}.png")
        for name, file in extra:
            zf.write(file, name)
    return str(path)


def test_batch_over_its_megapixel_budget_is_refused_from_the_headers(tiny_checkpoint, tmp_path):
    """40 solid 3000x3000 PNGs are 360 MP in a zip of a few hundred kB; with a 10 MP budget the
    first one and a small image fit, and the other 39 are refused, named, and never decoded."""
    import time

    from denoiser.app.batch_tab import TABLE_HEADERS, BatchLimits, denoise_batch

    upload = solid_png_zip(tmp_path / "bomb.zip", 40, 3000, extra=[("tiny.png", DATA / "camera.png")])
    t0 = time.perf_counter()
    archive, rows, summary = denoise_batch([upload], 1.0, str(tiny_checkpoint), "torch",
                                           limits=BatchLimits(max_megapixels=10))
    seconds = time.perf_counter() - t0
    table = {row[0]: dict(zip(TABLE_HEADERS, row)) for row in rows}
    assert {n for n, r in table.items() if r["status"] == "ok"} == {"bomb/big_000.png", "bomb/tiny.png"}
    refused = {n: r for n, r in table.items() if r["status"] == "refused"}
    assert len(refused) == 39 and all("10 MP budget" in r["reason"] and r["seconds"] == 0 for r in refused.values())
    assert "2 denoised, 0 failed, 39 refused (over the 10 MP budget of one batch)" in summary
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["bomb/big_000.png", "bomb/tiny.png"]
    print(f"{seconds:.1f} s for a batch that asked for {40 * 9} MP")


def test_batch_stops_at_its_time_limit_and_says_what_it_left(tiny_checkpoint, tmp_path):
    from denoiser.app.batch_tab import TABLE_HEADERS, BatchLimits, denoise_batch

    upload = solid_png_zip(tmp_path / "many.zip", 30, 1200)
    archive, rows, summary = denoise_batch([upload], 1.0, str(tiny_checkpoint), "torch",
                                           limits=BatchLimits(max_seconds=0.5))
    status = {row[0]: dict(zip(TABLE_HEADERS, row))["status"] for row in rows}
    ok = sorted(n for n, s in status.items() if s == "ok")
    left = [n for n, s in status.items() if s == "stopped"]
    assert len(status) == 30 and len(ok) + len(left) == 30 and len(left) >= 10
    assert all("time limit of 0.5 s" in row[-1] for row in rows if row[1] == "stopped")
    assert f"{len(ok)} denoised, 0 failed, {len(left)} not done (the batch reached its time limit of 0.5 s)" in summary
    if ok:  # the zip holds exactly the files marked ok, nothing half-way
        with zipfile.ZipFile(archive) as zf:
            assert sorted(zf.namelist()) == ok
    else:
        assert archive is None and "Nothing to download" in summary


def test_batch_stops_when_its_caller_has_gone(tiny_checkpoint, tmp_path):
    from denoiser.app.batch_tab import denoise_batch

    asked = []

    def caller_gone():  # the caller leaves after the batch has checked on it three times
        asked.append(1)
        return len(asked) > 3

    upload = solid_png_zip(tmp_path / "many.zip", 20, 256)
    _, rows, summary = denoise_batch([upload], 1.0, str(tiny_checkpoint), "torch", caller_gone=caller_gone)
    done = [row for row in rows if row[1] == "ok"]
    assert 1 <= len(done) <= 3 and len(rows) == 20
    assert f"{20 - len(done)} not done (the batch was cancelled: its caller left)" in summary
