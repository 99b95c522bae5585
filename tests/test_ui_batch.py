"""The Batch tab's handler with a real model: images and zips in, a zip of results (each in
its own format and bit depth, folders mirrored) and a per-file table out; bad files are rows,
not the end of the batch."""

import zipfile

import numpy as np
import pytest

from conftest import DATA

from denoiser.imageio import ImageInfo, read_image, write_image
from denoiser.inference import Denoiser


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def test_batch_of_images_and_zips_lists_failures_and_zips_results(tiny_checkpoint, tmp_path):
    from denoiser.ui_batch import TABLE_HEADERS, denoise_batch

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

    from denoiser.ui_batch import denoise_batch

    with pytest.raises(gr.Error, match="Upload some images or a zip first"):
        denoise_batch([], 1.0, str(tiny_checkpoint), "torch")
