"""scripts/study_mix.py forks a run per noise mix; scripts/score_models.py scores checkpoints on
Set12 and real pairs (on tiny stand-ins for ../shared/datasets)."""

import json
import shutil
import sys

import pytest
from PIL import Image

from denoiser.train.trainer import train
from tests.conftest import DATA, REPO, tiny_run_config

sys.path.insert(0, str(REPO / "scripts"))
import score_models  # noqa: E402
import study_mix  # noqa: E402


def test_a_fork_resumes_the_same_run_on_another_noise(tmp_path):
    run = tmp_path / "run"
    train(tiny_run_config(steps=6), run, progress=False, callback=lambda rec: rec["step"] >= 4)  # a leg of 4
    dst = study_mix.fork(run, "new", "gaussian:0-75|camera:iso=800")
    cfg, orig = (json.loads((d / "config.json").read_text()) for d in (dst, run))
    assert cfg["noise"]["spec"].startswith("gaussian:0-75|camera:iso=800,") and {**cfg, "noise": orig["noise"]} == orig
    assert (dst / "last.safetensors").read_bytes() == (run / "last.safetensors").read_bytes()
    train(tiny_run_config(), dst, resume=True, progress=False)  # continues from the fork point
    assert json.loads((dst / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 6
    with pytest.raises(ValueError, match="camrea"):
        study_mix.fork(run, "bad", "camrea")
    with pytest.raises(SystemExit, match="exists"):
        study_mix.fork(run, "new", "gaussian:5")


def test_score_models_prints_a_row_per_checkpoint(tiny_checkpoint, tmp_path, capsys):
    root = tmp_path / "datasets"
    for sub in ("Set12", "SIDD12/noisy", "SIDD12/clean"):
        (root / sub).mkdir(parents=True)
    Image.open(DATA / "camera.png").crop((0, 0, 64, 64)).save(root / "Set12" / "01.png")
    for pair in ("00", "01"):  # one for each half of the SIDD12 split
        shutil.copy(DATA / "noisy_astronaut.png", root / f"SIDD12/noisy/{pair}.png")
        shutil.copy(DATA / "astronaut.png", root / f"SIDD12/clean/{pair}.png")
    assert score_models.main([str(tiny_checkpoint), "--datasets", str(root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| model | step") and len(lines) == 3
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[1] == "8" and len(cells) == 10 and all(10 < float(v) < 60 for v in cells[4:])  # step, six PSNRs
    assert cells[7] == cells[8] == cells[9]  # all pairs, and each half, hold the same image here
    with pytest.raises(SystemExit, match="not found"):
        score_models.main([str(tmp_path / "nope.safetensors"), "--datasets", str(root)])
