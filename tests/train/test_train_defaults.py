"""Training defaults that do not hurt (issue 19, item 2): fine-tuning at a fine-tuning rate with
the start model's own score as the first point of the curve, warm-up within the run, --resume
that continues to the steps asked or says why not, Ctrl-C / SIGTERM that keep the work done, and
a validation set that says what it is made of."""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_run_config
from PIL import Image

from denoiser.cli.main import main
from denoiser.core.checkpoint import load_checkpoint, read_metadata
from denoiser.core.config import FINETUNE_LR
from denoiser.core.metrics import psnr
from denoiser.train.optim import lr_at
from denoiser.train.trainer import build_data, load_run_config, train

DEFAULT = REPO / "checkpoints" / "default-color.safetensors"
SMALL = ["--crop", "32", "--batch-size", "4", "--val-count", "4", "--threads", "1", "--quiet"]
TINY_NET = ["--width", "8", "--levels", "2"]


def records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_init_without_lr_fine_tunes_at_a_fine_tuning_rate_from_a_measured_baseline(tmp_path):
    run = tmp_path / "ft"
    assert main(["train", "--init", str(DEFAULT), "--run-dir", str(run), "--steps", "4", "--val-interval", "4",
                 *SMALL]) == 0
    cfg = load_run_config(run)
    assert cfg.train.lr == FINETUNE_LR < 1e-3
    vals = [r for r in records(run) if "val_psnr" in r]
    assert vals[0]["step"] == 0 and vals[-1]["step"] == 4
    # step 0 is the start model's own score on the run's validation set, measured here independently
    model, _ = load_checkpoint(DEFAULT)
    data = build_data(cfg, torch.device("cpu"))
    with torch.no_grad():
        own = psnr(model(data.val_noisy).clamp(0, 1), data.val_clean).mean().item()
    assert vals[0]["val_psnr"] == pytest.approx(own, abs=1e-3)
    # an explicit --lr still wins
    assert main(["train", "--init", str(DEFAULT), "--run-dir", str(tmp_path / "lr"), "--steps", "1", "--lr", "3e-4",
                 *SMALL]) == 0
    assert load_run_config(tmp_path / "lr").train.lr == 3e-4


def test_warmup_never_takes_more_than_a_tenth_of_the_run(tmp_path):
    cfg = tiny_run_config(steps=20)  # warm-up left at its default, 50 steps: more than the run
    assert cfg.train.warmup_steps > 20
    lrs = [lr_at(s, cfg.train, 50) for s in range(50)]
    assert lrs[4] == pytest.approx(cfg.train.lr) and lrs[3] < cfg.train.lr  # 5 steps of 50
    train(replace(cfg, train=replace(cfg.train, log_interval=1, schedule="constant")), tmp_path, progress=False)
    logged = [r["lr"] for r in records(tmp_path) if "lr" in r]
    assert logged[1] == pytest.approx(cfg.train.lr) and logged[-1] == pytest.approx(cfg.train.lr)


def test_resume_continues_a_finished_run_to_the_steps_asked_and_refuses_what_it_cannot_honour(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--run-dir", str(run), *TINY_NET, *SMALL, "--val-interval", "4", "--log-interval", "2"]
    assert main([*base, "--steps", "4"]) == 0
    assert read_metadata(run / "model.safetensors")["step"] == 4
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", "8", "--quiet"]) == 0
    assert read_metadata(run / "model.safetensors")["step"] == 8
    assert load_run_config(run).train.steps == 8  # a later --resume goes on from there
    assert [r["step"] for r in records(run) if "loss" in r] == [2, 4, 6, 8]
    capsys.readouterr()

    before = (run / "config.json").read_text()
    for flags, says in ((["--steps", "6"], "past the 6 steps asked"),
                        (["--width", "16", "--lr", "0.01"], "model.width 8 -> 16"),
                        (["--lr", "0.01"], "train.lr 0.001 -> 0.01"),
                        (["--time-budget", "1h"], "set by steps"),
                        (["--init", str(DEFAULT)], "give one")):
        assert main(["train", "--resume", "--run-dir", str(run), *flags, "--quiet"]) == 2, flags
        assert says in capsys.readouterr().err
    assert (run / "config.json").read_text() == before and read_metadata(run / "last.safetensors")["step"] == 8
    # every train flag maps to the config field it sets, so none can slip past these checks
    from denoiser.cli.main import build_parser
    from denoiser.cli.train import flag_fields

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    assert "model.width" in flag_fields({a.dest for a in sub._actions if a.dest != "help"})
    # how it runs may change: threads and intervals are not the experiment
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", "10", "--threads", "2",
                 "--log-interval", "1", "--quiet"]) == 0
    assert [r["step"] for r in records(run) if "loss" in r][-2:] == [9, 10]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_snapshot_says_where_and_exits_nonzero(tmp_path, signum):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "denoiser", "train", "--run-dir", str(run), "--steps", "100000", *TINY_NET,
           "--crop", "32", "--batch-size", "2", "--val-count", "2", "--val-interval", "100000",
           "--snapshot-interval", "100000", "--log-interval", "1", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((run / "metrics.jsonl").open())
                                             if (run / "metrics.jsonl").exists() else []) < 4:
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    snapshot = run / "last.safetensors"
    assert f"snapshot saved to {snapshot}" in err and "--resume" in err
    step = read_metadata(snapshot)["step"]
    assert step == max(r["step"] for r in records(run)) and step > 0  # the last step done, not an old one
    assert not (run / "model.safetensors").exists()  # the run is not finished
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", str(step + 2), "--quiet"]) == 0
    assert read_metadata(run / "model.safetensors")["step"] == step + 2


def _solid(path, value, size=(40, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_a_procedural_fallback_is_announced_and_recorded_and_pairs_validate_on_held_out_pairs(tmp_path, caplog):
    for i in range(3):
        _solid(tmp_path / "few" / f"{i}.png", 40 * i)
    cfg = tiny_run_config(steps=1, clean_dirs=(str(tmp_path / "few"),))
    train(cfg, tmp_path / "few-run", progress=False)
    record = json.loads((tmp_path / "few-run" / "config.json").read_text())["validation"]
    assert record["source"] == "procedural images" and "fewer than 10 clean images" in record["procedural_fallback"]
    assert "validation uses procedural images" in caplog.text
    load_run_config(tmp_path / "few-run")  # the record does not stop the config from loading

    for i, value in enumerate((30, 90, 200)):  # pair 2 (every k-th by name) is held out
        _solid(tmp_path / "pairs" / "clean" / f"{i}.png", value)
        _solid(tmp_path / "pairs" / "noisy" / f"{i}.png", value + 20)
    cfg = tiny_run_config(steps=1, pairs=(str(tmp_path / "pairs" / "noisy"), str(tmp_path / "pairs" / "clean")))
    data = build_data(cfg, torch.device("cpu"))
    assert len(data.dataset) == 2 and data.validation == {"source": "1 held-out pair(s)", "procedural_fallback": None}
    assert torch.allclose(data.val_clean, torch.full_like(data.val_clean, 200 / 255))
    assert torch.allclose(data.val_noisy, torch.full_like(data.val_noisy, 220 / 255))
    caplog.clear()
    train(cfg, tmp_path / "pairs-run", progress=False)
    recorded = json.loads((tmp_path / "pairs-run" / "config.json").read_text())["validation"]
    assert recorded["source"] == "1 held-out pair(s)"
    assert "procedural" not in caplog.text
