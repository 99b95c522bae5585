"""The Train tab's handlers, training for real (a tiny model, a few steps): start, live
records and previews, one run at a time, stop, hand the model over, export; data from zips
and from server folders, which must lie under the data root."""

import os
import time
import zipfile

import numpy as np
import pytest
from conftest import DATA

from denoiser.app import train_tab as ui_train
from denoiser.app.train_data import folder_under_root, resolve_source
from denoiser.core.imageio import read_image, write_image
from denoiser.run.catalog import discover_models
from denoiser.run.inference import Denoiser

TINY = dict(width=8, levels=2, crop=32, batch_size=4, val_count=4, val_interval=4, log_interval=2,
            snapshot_interval=50, warmup=0)


def wait_for(predicate, timeout=240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail("timed out")


@pytest.fixture
def runs(tmp_path):
    yield tmp_path / "runs"
    for job in ui_train._jobs.values():  # never leave a training thread behind for the next test
        job.stop()
        job._thread.join(120)


def test_run_shows_live_curves_stops_and_hands_over_its_model(runs):
    form = ui_train.TrainForm(steps=100_000, **TINY)
    run_dir, line = ui_train.start(form, runs, None)
    assert "Started" in line and "procedural" in line
    p = wait_for(lambda: (q := ui_train.progress(run_dir)).psnr and q.loss and q.preview and q)
    assert p.psnr[0]["step"] == 0  # the start model's score comes first: the curve's baseline
    assert p.running and "training" in p.status and p.model is None
    assert [r["step"] for r in p.loss] == sorted(r["step"] for r in p.loss) and p.loss[0]["step"] == 2
    assert p.preview.endswith(".png") and os.path.dirname(p.preview).endswith("previews")
    with pytest.raises(ValueError, match="one model at a time"):
        ui_train.start(form, runs, None)
    with pytest.raises(ValueError, match="not written its final model"):
        ui_train.finished_model(run_dir)

    assert "Stopping" in ui_train.stop(run_dir)
    final = ui_train.job_for(run_dir).wait(120)
    p = ui_train.progress(run_dir)
    assert not p.running and "finished" in p.status and p.model == str(final)
    assert p.loss[-1]["step"] < 100_000  # it stopped on request, long before the end

    model = ui_train.finished_model(run_dir)
    onnx, line = ui_train.export(run_dir)
    assert "Exported" in line and onnx.endswith("model.onnx")
    listed = [str(e.path) for e in discover_models(None, runs)]
    assert model in listed and onnx in listed
    img, _ = read_image(DATA / "noisy_astronaut.png")
    a = Denoiser.load(model, backend="torch").denoise_array(img[:64, :64])
    b = Denoiser.load(onnx).denoise_array(img[:64, :64])
    assert np.abs(a - b).max() < 1e-4


def make_pairs_zip(path, names_noisy, names_clean, nest="mydata/"):
    clean, info = read_image(DATA / "astronaut.png")
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for folder, names in (("noisy", names_noisy), ("clean", names_clean)):
            for i, name in enumerate(names):
                crop = clean[i * 40:i * 40 + 64, :64]
                if folder == "noisy":
                    crop = np.clip(crop + rng.normal(0, 25 / 255, crop.shape), 0, 1).astype(np.float32)
                tmp = write_image(path.parent / f"{folder}-{name}", crop, info)
                zf.write(tmp, f"{nest}{folder}/{name}")
    return path


def test_pairs_zip_trains_to_the_end(runs, tmp_path):
    z = make_pairs_zip(tmp_path / "pairs.zip", ["a.png", "b.png", "c.png"], ["a.png", "b.png", "c.png"])
    form = ui_train.TrainForm(source="pairs-zip", zip_path=str(z), steps=4, **TINY)
    run_dir, line = ui_train.start(form, runs, None)
    assert "pairs from pairs.zip: 3 noisy, 3 clean" in line
    ui_train.job_for(run_dir).wait(240)
    p = ui_train.progress(run_dir)
    assert "finished" in p.status and p.loss[-1]["step"] == 4 and p.model
    assert "procedural" not in p.status  # validated on the held-out pair


def test_a_procedural_validation_fallback_is_shown(runs, tmp_path):
    z = make_pairs_zip(tmp_path / "pairs.zip", ["a.png"], ["a.png"])
    run_dir, _ = ui_train.start(ui_train.TrainForm(source="pairs-zip", zip_path=str(z), steps=2, **TINY), runs, None)
    ui_train.job_for(run_dir).wait(240)
    assert "validation on procedural images: 1 pair(s) are too few to hold one out" in ui_train.progress(run_dir).status


def test_mismatched_pairs_are_all_reported(runs, tmp_path):
    z = make_pairs_zip(tmp_path / "pairs.zip", ["a.png", "b.png"], ["a.png", "x.png"], nest="")
    run_dir, _ = ui_train.start(ui_train.TrainForm(source="pairs-zip", zip_path=str(z), steps=4, **TINY), runs, None)
    with pytest.raises(ValueError):
        ui_train.job_for(run_dir).wait(240)
    status = ui_train.progress(run_dir).status
    assert "failed" in status and "no clean match for b.png" in status and "no noisy match for x.png" in status


def test_form_errors_are_plain_messages(runs):
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        ui_train.start(ui_train.TrainForm(batch_size=0), runs, None)
    with pytest.raises(ValueError, match="unknown noise"):
        ui_train.start(ui_train.TrainForm(noise="thermal:3", **TINY), runs, None)
    with pytest.raises(ValueError, match="upload a zip first"):
        ui_train.start(ui_train.TrainForm(source="clean-zip", **TINY), runs, None)
    assert not any(j.running for j in ui_train._jobs.values())


def test_server_folders_only_under_the_data_root(tmp_path, runs):
    root = tmp_path / "root"
    (root / "photos").mkdir(parents=True)
    write_image(root / "photos" / "a.png", read_image(DATA / "astronaut.png")[0])
    (root / "pairs" / "noisy").mkdir(parents=True)
    (root / "pairs" / "clean").mkdir()
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")

    assert folder_under_root(root, "photos") == (root / "photos").resolve()
    assert folder_under_root(root, "pairs/../photos") == (root / "photos").resolve()
    for bad in ("..", "../secret", str(tmp_path / "secret"), "/etc", "link", "photos/../../secret"):
        with pytest.raises(ValueError, match="outside the data root"):
            folder_under_root(root, bad)
    with pytest.raises(ValueError, match="not a folder"):
        folder_under_root(root, "missing")
    with pytest.raises(ValueError, match="server folders are off"):
        folder_under_root(None, "photos")

    src = resolve_source("folder", None, "photos", root, tmp_path / "work")
    assert src.clean_dirs == (str((root / "photos").resolve()),) and src.pairs is None
    src = resolve_source("folder", None, "pairs", root, tmp_path / "work")
    assert src.pairs == (str((root / "pairs" / "noisy").resolve()), str((root / "pairs" / "clean").resolve()))
    with pytest.raises(ValueError, match="outside the data root"):  # through the tab's own entry point
        ui_train.start(ui_train.TrainForm(source="folder", folder="../secret", **TINY), runs, root)
    with pytest.raises(ValueError, match="server folders are off"):
        ui_train.start(ui_train.TrainForm(source="folder", folder="photos", **TINY), runs, None)


def test_a_start_that_fails_keeps_no_run_folder_and_no_unpacked_data(runs, tmp_path):
    """Data that cannot be used (no images, not a zip, a name clash) is refused with a message,
    and neither the run's folder nor the megabytes unpacked from the upload stay in runs/."""
    no_images = tmp_path / "no_images.zip"
    with zipfile.ZipFile(no_images, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("photos/readme.bin", b"\0" * (4 << 20))
    with pytest.raises(ValueError, match="no_images.zip holds no images"):
        ui_train.start(ui_train.TrainForm(source="clean-zip", zip_path=str(no_images), steps=4, **TINY), runs, None)
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="fake.zip is not a readable zip") as refused:
        ui_train.start(ui_train.TrainForm(source="clean-zip", zip_path=str(tmp_path / "fake.zip"), steps=4, **TINY),
                       runs, None)
    assert str(tmp_path) not in str(refused.value)
    assert not runs.exists() or not list(runs.iterdir())


def test_clashing_and_overlong_names_in_a_training_zip_are_skipped_and_said(tmp_path):
    png = (DATA / "camera.png").read_bytes()
    z = tmp_path / "photos.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("a.png", "a.png/b.png", "z" * 300 + ".png", "c.png"):
            zf.writestr(name, png)
    src = resolve_source("clean-zip", str(z), None, None, tmp_path / "work")
    assert src.description.startswith("2 clean images from photos.zip")
    assert "2 member(s) skipped: a.png/b.png: the archive also holds a file named a.png" in src.description
    assert "longer than 255 bytes" in src.description and str(tmp_path) not in src.description
