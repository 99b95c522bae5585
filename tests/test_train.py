import json

import numpy as np
from PIL import Image

from denoiser.checkpoint import read_metadata
from denoiser.cli import main
from denoiser.inference import Denoiser
from denoiser.train import lr_at, train

from conftest import tiny_run_config


def test_cli_train_writes_a_complete_run_folder(tmp_path):
    run = tmp_path / "run"
    rc = main(["train", "--run", str(run), "--steps", "6", "--width", "8", "--levels", "2", "--crop", "32",
               "--batch-size", "4", "--val-count", "2", "--val-interval", "3", "--snapshot-interval", "3",
               "--log-interval", "2", "--noise", "gaussian:10-30", "--threads", "2"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 6 and cfg["noise"]["sigma_max"] == 30 and cfg["model"]["width"] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "val_psnr" in r] == [3, 6]
    meta = read_metadata(run / "model.safetensors")
    assert meta["model"]["width"] == 8 and meta["step"] == 6
    assert (run / "best.safetensors").exists() and (run / "last.safetensors").exists()
    Denoiser.load(run / "model.safetensors", backend="torch")  # loads with no flags


def test_training_learns(tmp_path):
    """A short run must raise validation PSNR well above its first measurement."""
    cfg = tiny_run_config(steps=80)
    train(cfg, tmp_path, progress=False)
    vals = [json.loads(line)["val_psnr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if "val_psnr" in line]
    assert vals[-1] > vals[0] + 1.0


def test_train_on_paired_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        clean = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        for sub, arr in (("clean", clean), ("noisy", np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255))):
            (tmp_path / sub).mkdir(exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(tmp_path / sub / f"{i}.png")
    rc = main(["train", "--run", str(tmp_path / "run"), "--pairs", str(tmp_path / "noisy"), str(tmp_path / "clean"),
               "--steps", "2", "--width", "8", "--levels", "2", "--crop", "32", "--batch-size", "2",
               "--val-count", "2", "--log-interval", "1"])
    assert rc == 0 and (tmp_path / "run" / "model.safetensors").exists()


def test_bad_pairs_fail_before_training(tmp_path, capsys):
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "noisy" / "x.png")
    rc = main(["train", "--run", str(tmp_path / "run"), "--pairs", str(tmp_path / "noisy"), str(tmp_path / "clean")])
    assert rc == 2 and "no clean match for x.png" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny_run_config(steps=100)
    lrs = [lr_at(s, cfg) for s in range(100)]
    peak = cfg.train.lr
    assert lrs[0] < peak and max(lrs) == peak and lrs[-1] < 0.1 * peak
