"""Watching a run: metrics.jsonl as a UI tails it, the terminal progress line, preview grids, and
the three together in a real (tiny) run."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from denoiser.core.imageio import read_image
from denoiser.train.monitor import MetricsLog, Progress, read_metrics, save_preview
from denoiser.train.trainer import train


def test_metrics_log_writes_each_record_at_once_and_the_callback_can_stop(tmp_path):
    seen = []
    log = MetricsLog(tmp_path, tensorboard=False, callback=lambda rec: seen.append(rec) or rec["step"] >= 4)
    assert log.write({"step": 2, "loss": 0.5}) is False
    assert read_metrics(tmp_path) == [{"step": 2, "loss": 0.5}]  # readable while the run goes on
    assert log.write({"step": 4, "val_psnr": 30.25}) is True
    log.close()
    assert seen == read_metrics(tmp_path) == [{"step": 2, "loss": 0.5}, {"step": 4, "val_psnr": 30.25}]
    # a resumed leg appends to the same file
    again = MetricsLog(tmp_path, tensorboard=False, callback=None)
    assert again.write({"step": 6, "loss": 0.25}) is False
    again.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [2, 4, 6]


def test_metrics_log_without_a_folder_writes_nothing_but_still_asks_the_callback(tmp_path):
    log = MetricsLog(None, tensorboard=True, callback=lambda rec: rec["step"] == 3)  # a DDP rank other than 0
    assert [log.write({"step": s}) for s in (1, 3)] == [False, True]
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_read_metrics_stops_at_a_line_being_written(tmp_path):
    assert read_metrics(tmp_path) == []  # no file yet
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 0.5}]


def test_progress_line_shows_the_bar_step_loss_rate_and_pace(capsys):
    bar = Progress(total=24, first=0, enabled=True)
    bar.update(12, {"loss": 0.123456, "lr": 1e-3, "images_per_s": 50.0})
    bar.message("step 12: val PSNR 30.00 dB")
    err = capsys.readouterr().err  # not a terminal here: one plain line each
    lines = err.splitlines()
    assert len(lines) == 2 and "\r" not in err
    assert re.fullmatch(r"\[#{12}\.{12}\] 12/24 loss 0\.1235 lr 1\.00e-03 50\.0 img/s ETA \d+\.\d min", lines[0])
    assert lines[1] == "step 12: val PSNR 30.00 dB"
    quiet = Progress(total=24, first=0, enabled=False)
    quiet.update(12, {"loss": 0.1, "lr": 1e-3, "images_per_s": 50.0})
    quiet.message("nothing")
    assert capsys.readouterr().err == ""


def test_progress_counts_the_eta_from_the_first_step_of_this_leg(capsys):
    bar = Progress(total=1000, first=990, enabled=True)  # a resumed leg: 10 steps left
    bar.start -= 10.0  # 10 s for the 5 steps done in this leg: 2 s a step, 5 steps to go
    bar.update(995, {"loss": 0.1, "lr": 1e-4, "images_per_s": 8.0})
    line = capsys.readouterr().err.strip()
    assert line.startswith("[" + "#" * 23 + ".] 995/1000") and line.endswith("ETA 0.2 min")


@pytest.mark.parametrize("channels", [3, 1])
def test_preview_is_one_row_per_crop_noisy_output_clean(tmp_path, channels):
    g = torch.Generator().manual_seed(0)
    noisy, output, clean = (torch.rand(2, channels, 8, 6, generator=g) for _ in range(3))
    path = save_preview(tmp_path / "previews" / "step_0000004.png", noisy, output, clean)
    grid, info = read_image(path)
    assert grid.shape[:2] == (16, 18) and info.gray == (channels == 1)
    for row in range(2):
        for col, part in enumerate((noisy, output, clean)):
            want = part[row].numpy().transpose(1, 2, 0)
            got = grid[row * 8:(row + 1) * 8, col * 6:(col + 1) * 6, :channels]
            np.testing.assert_allclose(got, want, atol=0.5 / 255 + 1e-6)  # 8-bit PNG


def test_a_run_reports_to_its_terminal_its_file_and_its_previews(tmp_path, capsys):
    cfg = tiny_run_config(steps=4)
    cfg = replace(cfg, train=replace(cfg.train, preview_count=2))
    train(cfg, tmp_path, progress=True)
    err = capsys.readouterr().err.splitlines()
    bars = [ln for ln in err if ln.startswith("[")]
    assert [ln.split()[1] for ln in bars] == ["2/4", "4/4"] and bars[-1].startswith("[" + "#" * 24 + "]")
    assert [ln.split(":")[0] for ln in err if "val PSNR" in ln] == ["step 0", "step 4"]
    records = read_metrics(tmp_path)
    assert records == [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert [r["step"] for r in records if "val_psnr" in r] == [0, 4]
    previews = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert previews == ["step_0000000.png", "step_0000004.png"]
    grid, _ = read_image(tmp_path / "previews" / previews[-1])
    assert grid.shape == (2 * cfg.data.val_crop, 3 * cfg.data.val_crop, 3)
