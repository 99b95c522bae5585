"""`denoiser synth`, `denoiser estimate-noise`, and the noise kinds in --help."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from denoiser.cli.main import build_parser, main
from denoiser.core.config import DataConfig, NoiseConfig
from denoiser.core.data import PairedFolder, build_training_data
from denoiser.core.noise.estimate import estimate_channel_sigmas, estimate_sigma
from denoiser.core.noise.ops import protocol_noisy_uint8, round_to_8bit, synthesize
from denoiser.core.noise.spec import NOISE_KINDS, NOISE_PRESETS
from denoiser.core.procedural import dead_leaves


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.fixture
def clean_dir(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    rgb = np.asarray(Image.open(DATA / "astronaut.png").convert("RGB"))
    Image.fromarray(rgb[:96, :128]).save(src / "a.png")
    Image.fromarray(rgb[100:180, 50:150]).save(src / "sub" / "b.JPG", quality=95)
    Image.open(DATA / "camera.png").crop((0, 0, 80, 64)).save(src / "gray.png")
    return src


def test_synth_writes_seeded_pairs_under_the_same_names(clean_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["synth", "--clean", str(clean_dir), "--noise", "gaussian:25", "-o", str(out), "--seed", "3"]) == 0
    names = sorted(p.relative_to(out / "noisy").as_posix() for p in (out / "noisy").rglob("*.png"))
    assert names == ["a.png", "gray.png", "sub/b.png"]
    assert names == sorted(p.relative_to(out / "clean").as_posix() for p in (out / "clean").rglob("*.png"))
    assert np.array_equal(_png(out / "clean" / "a.png"), _png(clean_dir / "a.png"))  # the clean half is the source
    assert _png(out / "noisy" / "gray.png").ndim == 2  # gray stays gray
    residual = _png(out / "noisy" / "a.png").astype(float) - _png(out / "clean" / "a.png")
    assert 22 < residual.std() < 26  # sigma 25, clipped at 0/255
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["noise"]["spec"] == "gaussian:25" and manifest["pairs"] == 3

    again = tmp_path / "again"
    main(["synth", "--clean", str(clean_dir), "--noise", "gaussian:25", "-o", str(again), "--seed", "3"])
    assert all((out / "noisy" / n).read_bytes() == (again / "noisy" / n).read_bytes() for n in names)
    other = tmp_path / "other"
    main(["synth", "--clean", str(clean_dir), "--noise", "gaussian:25", "-o", str(other), "--seed", "4"])
    assert not np.array_equal(_png(out / "noisy" / "a.png"), _png(other / "noisy" / "a.png"))

    # each image's noise depends on its own name only: a new file leaves the others' alone
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(clean_dir / "0_new.png")
    more = tmp_path / "more"
    main(["synth", "--clean", str(clean_dir), "--noise", "gaussian:25", "-o", str(more), "--seed", "3"])
    assert (more / "noisy" / "a.png").read_bytes() == (out / "noisy" / "a.png").read_bytes()

    # and the result is a paired dataset that training reads as it is
    assert len(PairedFolder(out / "noisy", out / "clean", crop=32, channels=3, seed=0)) == 3


def test_synth_crops_are_the_pairs_training_draws(clean_dir, tmp_path):
    out = tmp_path / "crops"
    assert main(["synth", "--clean", str(clean_dir), "--noise", "camera|gaussian:5-50", "-o", str(out),
                 "--crop", "32", "--count", "6", "--batch-size", "4", "--seed", "5"]) == 0
    # what train.py does with --crop 32 --batch-size 4 --seed 5 on one CPU: index stream 0, 1, 2, ...
    # in whole batches, noise from a generator seeded with the training seed
    data = DataConfig(clean_dirs=(str(clean_dir),), crop=32, batch_size=4)
    dataset, _ = build_training_data(data, seed=5)
    gen = torch.Generator().manual_seed(5)
    noise = NoiseConfig(spec="camera|gaussian:5-50")
    expected = []
    for first in (0, 4):
        clean = torch.stack([dataset[i] for i in range(first, first + 4)])
        expected += list(zip(round_to_8bit(synthesize(clean, noise, gen)), clean))
    for i in range(6):
        noisy, clean = (torch.from_numpy(_png(out / side / f"{i:06d}.png").copy()).permute(2, 0, 1) / 255.0
                        for side in ("noisy", "clean"))
        assert torch.equal(noisy, expected[i][0]) and torch.equal(clean, expected[i][1])
    assert not (out / "noisy" / "000006.png").exists()


def test_synth_needs_no_data_with_procedural_crops(tmp_path):
    out = tmp_path / "proc"
    assert main(["synth", "--noise", "poisson-gaussian", "-o", str(out), "--crop", "24", "--count", "3",
                 "--channels", "1"]) == 0
    assert _png(out / "clean" / "000002.png").shape == (24, 24)


@pytest.mark.parametrize("args,message", [
    (["--noise", "fog"], "unknown noise 'fog'"),
    (["--clean", "{missing}"], "clean folder not found"),
    (["-o", "{photos}/inside"], "overlaps the clean folder"),
    (["-o", "{full}"], "not empty"),
    ([], None),  # the arguments alone are fine: the control case
])
def test_synth_refuses_bad_input_before_writing(clean_dir, tmp_path, capsys, args, message):
    full = tmp_path / "full"
    (full / "noisy").mkdir(parents=True)
    (full / "noisy" / "keep.png").write_bytes(b"x")
    fill = {"missing": str(tmp_path / "missing"), "photos": str(clean_dir), "full": str(full)}
    argv = ["synth", "--clean", str(clean_dir), "-o", str(tmp_path / "new")] + [a.format(**fill) for a in args]
    rc = main(argv)
    if message is None:
        assert rc == 0
        return
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and not (clean_dir / "inside").exists()
    assert (full / "noisy" / "keep.png").read_bytes() == b"x"


@pytest.mark.parametrize("name,sigma", [("camera", 10), ("camera", 25), ("camera", 50), ("astronaut", 15),
                                        ("astronaut", 35)])
def test_estimate_noise_is_within_10_percent_on_sample_images(tmp_path, capsys, name, sigma):
    clean = np.asarray(Image.open(DATA / f"{name}.png"))
    noisy = protocol_noisy_uint8(clean, sigma, seed=sigma)  # clipped, rounded 8-bit: what users upload
    path = tmp_path / f"{name}_{sigma}.png"
    Image.fromarray(noisy).save(path)
    assert main(["estimate-noise", str(path)]) == 0
    estimate = float(capsys.readouterr().out.split()[0])
    assert abs(estimate - sigma) / sigma < 0.10


@pytest.mark.parametrize("sigma", [10, 30, 50])
def test_estimate_noise_on_procedural_images(sigma):
    clean = dead_leaves(256, 1, np.random.default_rng(sigma))
    assert abs(estimate_sigma(protocol_noisy_uint8(clean, sigma, seed=0) / 255.0) - sigma) / sigma < 0.10


def test_estimate_noise_per_channel_and_clean_images():
    rgb = np.asarray(Image.open(DATA / "astronaut.png").convert("RGB")).astype(float)
    noisy = rgb + np.random.default_rng(0).normal(0, 1, rgb.shape) * np.array([10.0, 20.0, 40.0])
    r, g, b = estimate_channel_sigmas(noisy / 255.0)
    assert abs(r - 10) < 1 and abs(g - 20) < 2 and abs(b - 40) < 4
    assert estimate_sigma(rgb / 255.0) < 2  # the clean sample is (nearly) noise-free


def test_estimate_noise_reports_bad_files_and_goes_on(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "tiny.png")
    assert main(["estimate-noise", str(DATA / "camera.png"), str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    records = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(captured.out)}
    assert records["camera.png"]["sigma"] < 2 and "too small" in records["tiny.png"]["error"]
    assert "broken.png: error" in captured.err


@pytest.mark.parametrize("command", ["train", "synth"])
def test_help_lists_every_noise_kind(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    for kind in NOISE_KINDS:
        assert f"  {kind}" in text
    assert NOISE_PRESETS["camera-v1"] in text.replace("\n      ", "")
