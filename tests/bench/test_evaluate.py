"""The benchmark protocol loop that scores our models and the classical baselines alike."""

import numpy as np
import pytest
from PIL import Image

from denoiser.bench.evaluate import evaluate, evaluate_fn
from denoiser.run.inference import Denoiser
from tests.conftest import DATA


@pytest.fixture
def clean_dir(tmp_path):
    for name in ("camera.png", "astronaut.png"):
        Image.open(DATA / name).convert("L").crop((0, 0, 96, 80)).save(tmp_path / name)
    return tmp_path


def test_identity_scores_the_noisy_input(clean_dir):
    r = evaluate_fn(lambda a: a, clean_dir, sigma=25, seed=3)
    assert r["images"] == 2
    assert r["psnr"] == pytest.approx(r["psnr_noisy"]) and r["psnr_gain"] == pytest.approx(0.0)
    # sigma 25 on the 0-255 scale is about 20.2 dB before clipping; clipping only raises it
    assert 20.0 < r["psnr_noisy"] < 21.5
    again = evaluate_fn(lambda a: a, clean_dir, sigma=25, seed=3)
    assert again["per_image"] == r["per_image"]  # fixed seed per image: the same noisy inputs
    other = evaluate_fn(lambda a: a, clean_dir, sigma=25, seed=4)
    assert other["per_image"] != r["per_image"]


def test_a_list_of_files_is_scored_in_its_order_with_its_own_seeds(clean_dir):
    folder = evaluate_fn(lambda a: a, clean_dir, sigma=25)
    files = sorted(clean_dir.iterdir())
    subset = evaluate_fn(lambda a: a, files[1:], sigma=25)
    # the second file is now the first: it gets seed 0, i.e. the noise the first file got before
    assert subset["images"] == 1 and subset["clean_dir"] == str(clean_dir)
    assert subset["per_image"][0]["image"] == files[1].name
    assert subset["per_image"][0]["psnr"] != folder["per_image"][1]["psnr"]
    assert evaluate_fn(lambda a: a, files, sigma=25)["per_image"] == folder["per_image"]


def test_a_smoother_beats_the_noisy_input(clean_dir):
    import cv2

    blur = lambda a: cv2.GaussianBlur(a, (5, 5), 1.0).reshape(a.shape)  # noqa: E731
    r = evaluate_fn(blur, clean_dir, sigma=50)
    assert r["psnr"] > r["psnr_noisy"] + 3
    assert r["seconds_per_megapixel"] > 0


def test_evaluate_runs_a_model_through_the_same_loop(tiny_checkpoint, clean_dir):
    dn = Denoiser.load(tiny_checkpoint, backend="torch")
    r = evaluate(dn, clean_dir, sigma=25)
    same = evaluate_fn(dn.denoise_array, clean_dir, sigma=25)
    assert r["model"] == str(tiny_checkpoint) and r["backend"].startswith("PyTorch")
    assert np.isclose(r["psnr"], same["psnr"]) and r["per_image"] == same["per_image"]


def test_noise_spec_replaces_gaussian_and_is_seeded(clean_dir):
    camera = evaluate_fn(lambda a: a, clean_dir, sigma=25, noise="camera")
    assert camera["noise"] == "camera" and "sigma" not in camera
    assert camera["per_image"] == evaluate_fn(lambda a: a, clean_dir, sigma=25, noise="camera")["per_image"]
    # a fixed-sigma spec goes through the torch noise ops, yet lands where the numpy protocol does
    g = evaluate_fn(lambda a: a, clean_dir, sigma=0, noise="gaussian:25")
    ref = evaluate_fn(lambda a: a, clean_dir, sigma=25)
    assert abs(g["psnr_noisy"] - ref["psnr_noisy"]) < 0.15 and g["per_image"] != ref["per_image"]


@pytest.fixture
def pairs_dir(tmp_path):
    """Real-looking pairs: the noisy file is the clean one with fixed noise baked into the PNG."""
    rng = np.random.default_rng(0)
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    for name in ("camera.png", "coffee.png"):
        clean = np.asarray(Image.open(DATA / name).convert("RGB").crop((0, 0, 64, 48)))
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(clean).save(tmp_path / "clean" / name)
        Image.fromarray(noisy).save(tmp_path / "noisy" / name)
    return tmp_path


def test_real_pairs_are_scored_as_they_are(pairs_dir):
    from denoiser.bench.evaluate import evaluate_pairs_fn

    r = evaluate_pairs_fn(lambda a: a, pairs_dir / "noisy", pairs_dir / "clean")
    assert r["images"] == 2 and r["noise"] == "real pairs"
    assert r["psnr"] == pytest.approx(r["psnr_noisy"]) and 21 < r["psnr_noisy"] < 24  # sigma 20: about 22.1 dB
    import cv2

    smooth = evaluate_pairs_fn(lambda a: cv2.GaussianBlur(a, (5, 5), 1.0), pairs_dir / "noisy", pairs_dir / "clean")
    assert smooth["psnr"] > r["psnr"] + 1


def test_unmatched_pairs_are_listed(pairs_dir):
    from denoiser.bench.evaluate import evaluate_pairs_fn

    (pairs_dir / "noisy" / "camera.png").rename(pairs_dir / "noisy" / "other.png")
    with pytest.raises(ValueError, match="camera, other"):
        evaluate_pairs_fn(lambda a: a, pairs_dir / "noisy", pairs_dir / "clean")


def test_cli_eval_pairs_prints_the_same_json_as_clean(tiny_checkpoint, pairs_dir, capsys):
    import json

    from denoiser.cli.main import main

    assert main(["eval", "--model", str(tiny_checkpoint), "--pairs", str(pairs_dir / "noisy"),
                 str(pairs_dir / "clean")]) == 0
    paired = json.loads(capsys.readouterr().out)
    assert main(["eval", "--model", str(tiny_checkpoint), "--clean", str(pairs_dir / "clean")]) == 0
    synthetic = json.loads(capsys.readouterr().out)
    shared = {"model", "backend", "clean_dir", "images", "psnr_noisy", "ssim_noisy", "psnr", "ssim", "psnr_gain",
              "seconds_per_megapixel"}
    assert shared <= set(paired) and shared <= set(synthetic) and paired["images"] == 2
    assert main(["eval", "--model", str(tiny_checkpoint)]) == 2
    assert "--clean DIR" in capsys.readouterr().err


def test_files_named_noisy_are_not_scored_as_clean(clean_dir):
    import shutil

    shutil.copy(DATA / "noisy_astronaut.png", clean_dir / "noisy_astronaut.png")  # the shipped sample
    (clean_dir / "noisy").mkdir()
    shutil.copy(clean_dir / "camera.png", clean_dir / "noisy" / "camera.png")
    shutil.copy(clean_dir / "camera.png", clean_dir / "camera-denoised.png")  # "denoised" is not noisy
    r = evaluate_fn(lambda a: a, clean_dir, sigma=25)
    assert sorted(row["image"] for row in r["per_image"]) == ["astronaut.png", "camera-denoised.png", "camera.png"]
    assert [s["image"] for s in r["skipped"]] == ["noisy/camera.png", "noisy_astronaut.png"]
    only = clean_dir / "only"
    only.mkdir()
    shutil.copy(DATA / "noisy_astronaut.png", only / "astronaut_noisy.png")
    with pytest.raises(ValueError, match=r"no clean images .*\(left out as noisy by name: astronaut_noisy.png\)"):
        evaluate_fn(lambda a: a, only, sigma=25)
