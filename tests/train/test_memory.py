"""Training data and models in bounded memory (issue 19 item 7, issue 20 item 2): images held as
uint8, a per-image pixel limit and a decoded-bytes budget known from the headers before anything
is decoded, folders past the budget read from disk, uploads past it refused with what to do, and
a page run's model, batch and crop bounded by an estimate of the memory they need."""

import json
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from denoiser.app import train_tab as ui_train
from denoiser.cli.main import main
from denoiser.core.data import CleanCrops, load_clean_images
from denoiser.core.image_store import DiskImages, Limits


def solid_png_bytes(width: int, height: int, rgb=(90, 140, 200)) -> bytes:
    """A solid-colour RGB PNG, compressed row by row: a 12000x12000 one takes a few MB of memory
    to make (Pillow would hold all 432 MB of it)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp, row = zlib.compressobj(9), b"\0" + bytes(rgb) * width
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_training_images_are_decoded_to_uint8_without_a_float_copy(tmp_path):
    (tmp_path / "big.png").write_bytes(solid_png_bytes(3000, 2000))
    uint8_bytes = 3000 * 2000 * 3
    tracemalloc.start()
    try:
        images = load_clean_images((str(tmp_path),), channels=3, min_size=32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert images.images[0].dtype == np.uint8 and images.images[0].shape == (2000, 3000, 3)
    assert (images.images[0] == (90, 140, 200)).all()
    assert peak < 2.5 * uint8_bytes  # Pillow's bytes and the array; float32 would be 4x, plus its rounding


def test_a_folder_past_the_memory_budget_is_read_from_disk_with_the_same_crops(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    held = load_clean_images((str(tmp_path),), 3, 32)
    budget = 2 * 48 * 64 * 3  # two of the four images
    lazy = load_clean_images((str(tmp_path),), 3, 32, Limits(max_pixels=10**6, memory_budget=budget))
    assert isinstance(lazy.images, DiskImages) and not isinstance(held.images, DiskImages)
    assert "reading them from disk as training goes" in caplog.text and "--data-memory" in caplog.text
    assert lazy.shapes == [(48, 64, 3)] * 4
    a = CleanCrops(held, 32, 3, 0.0, seed=3)
    b = CleanCrops(lazy, 32, 3, 0.0, seed=3)
    assert all((a[i] == b[i]).all() for i in range(12))
    assert sum(im.nbytes for im in lazy.images._cache.values()) <= budget // 4 + 48 * 64 * 3  # a few kept, not all


def test_an_image_over_the_pixel_limit_stops_training_and_says_what_to_do(tmp_path, capsys):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "wide.png")
    rc = main(["train", "--clean", str(tmp_path), "--max-pixels", "1000", "--run-dir", str(tmp_path / "run"),
               "--steps", "1", "--width", "8", "--levels", "2", "--crop", "32", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "wide.png" in err and "Downscale them" in err and "--max-pixels" in err
    assert not (tmp_path / "run").exists()


SERVER = """
import json, resource, sys
from denoiser.app import train_tab as ui_train
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = rss()
try:
    ui_train.start(ui_train.TrainForm(source="clean-zip", zip_path=sys.argv[1], steps=1), sys.argv[2], None)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"error": error, "growth": rss() - before}))
"""


def test_a_zip_of_three_12000px_pngs_is_refused_before_decoding_and_the_server_stays_small(tmp_path):
    png = solid_png_bytes(12000, 12000)
    archive = tmp_path / "huge.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("a.png", "b.png", "c.png"):
            zf.writestr(f"photos/{name}", png)
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, "-c", SERVER, str(archive), str(runs)], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    error = result["error"]
    assert error and "3 training image(s) over 40 MP" in error and "photos/a.png" in error
    assert "Downscale them" in error and "--data-root" in error and str(tmp_path) not in error
    assert result["growth"] < 200 * 2**20  # one decoded image alone would be 432 MB (1.7 GB as float)
    assert not runs.exists() or not any(runs.iterdir())  # the refused run left nothing on the disk


def test_uploads_past_the_budget_are_refused_and_server_folders_read_from_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_train, "DATA_MEMORY", 40 * 2**20)  # this server holds 40 MiB of training images
    png = solid_png_bytes(3000, 2500)  # 7.5 MP: within the upload limit, 22.5 MB decoded
    archive = tmp_path / "set.zip"
    root = tmp_path / "root" / "set"
    root.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.png", png)
            (root / f"{i}.png").write_bytes(png)
    form = dict(steps=2, width=8, levels=2, crop=32, batch_size=2, val_count=2, val_interval=2, log_interval=1,
                snapshot_interval=50, warmup=0)
    with pytest.raises(ValueError, match=r"the 3 training images decode to 64 MiB, over the 40 MiB .*Downscale"
                                         r"|the 3 training images decode to 64 MiB, over the 40 MiB.*--data-root"):
        ui_train.start(ui_train.TrainForm(source="clean-zip", zip_path=str(archive), **form), tmp_path / "runs", None)
    run_dir, _ = ui_train.start(ui_train.TrainForm(source="folder", folder="set", **form), tmp_path / "runs",
                                tmp_path / "root")
    job = ui_train.job_for(run_dir)
    try:
        job.wait(240)
    finally:
        job.stop()
    assert "finished" in ui_train.progress(run_dir).status


@pytest.mark.parametrize("field,value,says", [("width", 1024, "about 5"), ("levels", 100, "far more than"),
                                             ("batch_size", 100_000, "GiB of memory"),
                                             ("val_count", 1_000_000, "GiB of memory")])
def test_a_page_run_too_large_for_memory_is_refused(tmp_path, field, value, says):
    with pytest.raises(ValueError, match="lower the width") as e:
        ui_train.start(ui_train.TrainForm(**{field: value}), tmp_path / "runs", None)
    assert says in str(e.value) and "this server allows 4.0 GiB per run" in str(e.value)
    assert not ui_train.running_run() and not (tmp_path / "runs").exists()


def test_a_page_fine_tune_without_a_rate_gets_the_fine_tuning_rate():
    from denoiser.core.config import FINETUNE_LR, DataConfig, TrainConfig

    model = str(REPO / "checkpoints" / "default-color.safetensors")
    assert ui_train.build_run_config(ui_train.TrainForm(init=model), DataConfig()).train.lr == FINETUNE_LR
    assert ui_train.build_run_config(ui_train.TrainForm(), DataConfig()).train.lr == TrainConfig.lr
    assert ui_train.build_run_config(ui_train.TrainForm(init=model, lr=5e-4), DataConfig()).train.lr == 5e-4
