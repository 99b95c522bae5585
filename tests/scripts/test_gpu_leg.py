"""scripts/gpu_leg.py, the round trip a lent GPU's call makes, run here on the CPU: send packs
the runs into the tree and stages data, train runs both legs side by side and packs them,
receive puts the weights back into the runs and leaves their own config alone."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
from PIL import Image

from denoiser.core.checkpoint import read_metadata
from denoiser.train.trainer import train
from tests.conftest import REPO, tiny_run_config

sys.path.insert(0, str(REPO / "scripts"))
import gpu_leg  # noqa: E402


def _tiny_run(runs, name: str, channels: int, data: str) -> None:
    cfg = tiny_run_config(steps=10 ** 6, channels=channels, clean_dirs=(data,), procedural_weight=0.5)
    cfg = replace(cfg, model=replace(cfg.model, channels=channels),
                  train=replace(cfg.train, time_budget_s=3600.0, val_interval=10 ** 6, snapshot_interval=10 ** 6))
    train(cfg, runs / f"default-{name}", progress=False, callback=lambda rec: rec["step"] >= 2)


def test_a_gpu_leg_round_trip_on_the_cpu(tmp_path):
    root, runs, datasets = tmp_path / "repo", tmp_path / "repo" / "runs", tmp_path / "datasets"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("runs/\n.device/\n")
    rng = np.random.default_rng(0)
    for folder in ("CBSD432", "Train400"):
        (datasets / folder).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(datasets / folder / f"{i}.png")
    _tiny_run(runs, "v2-color", 3, str(datasets / "CBSD432"))
    _tiny_run(runs, "v2-gray", 1, str(datasets / "Train400"))
    own_config = (runs / "default-v2-gray" / "config.json").read_text()

    assert gpu_leg.send(root, datasets, runs) == ["CBSD432", "Train400"]
    wip = root / "checkpoints" / "wip" / "default-v2-color" / "last.safetensors"
    assert wip.is_file() and gpu_leg.tree_bytes(root) >= wip.stat().st_size  # the tree carries it
    assert sorted(p.name for p in (root / ".device" / "datasets" / "CBSD432").iterdir()) == ["0.png", "1.png"]

    out = tmp_path / "out"
    out.mkdir()
    gpu_leg.train_legs(root, out, minutes=0.05, device="cpu", batch=2, work=tmp_path / "work")
    for name in gpu_leg.RUNS:
        meta = read_metadata(out / f"{name}.safetensors")
        assert meta["step"] > 2 and meta["run"]["data"]["batch_size"] == 2  # trained on, at the leg's batch
        assert meta["run"]["data"]["clean_dirs"][0].endswith(".device/datasets/CBSD432")

    gpu_leg.receive(root, out, runs)
    back = read_metadata(runs / "default-v2-gray" / "last.safetensors")
    assert back["step"] == read_metadata(out / "v2-gray.safetensors")["step"]
    assert (runs / "default-v2-gray" / "config.json").read_text() == own_config  # CPU config untouched
    steps = [json.loads(ln)["step"] for ln in (runs / "default-v2-gray" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == back["step"]
    # and the run goes on here from what came back
    assert read_metadata(train(tiny_run_config(), runs / "default-v2-gray", resume=True, progress=False,
                               callback=lambda rec: True))["step"] > back["step"]
