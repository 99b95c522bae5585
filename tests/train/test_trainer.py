import json
import os
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
from denoiser.core.procedural import dead_leaves
from denoiser.run.inference import Denoiser
from denoiser.train.optim import lr_at
from denoiser.train.trainer import load_run_config, train


def test_cli_train_writes_a_complete_run_folder(tmp_path):
    run = tmp_path / "run"
    rc = main(["train", "--run-dir", str(run), "--steps", "6", "--width", "8", "--levels", "2", "--crop", "32",
               "--batch-size", "4", "--val-count", "2", "--val-interval", "3", "--snapshot-interval", "3",
               "--log-interval", "2", "--noise", "gaussian:10-30", "--threads", "2"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 6 and cfg["noise"]["spec"] == "gaussian:10-30" and cfg["model"]["width"] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "val_psnr" in r] == [0, 3, 6]  # step 0: the start model's baseline
    meta = read_metadata(run / "model.safetensors")
    assert meta["model"]["width"] == 8 and meta["step"] == 6
    assert (run / "best.safetensors").exists() and (run / "last.safetensors").exists()
    Denoiser.load(run / "model.safetensors", backend="torch")  # loads with no flags


def test_tensorboard_gets_the_same_scalars_as_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_run_config()
    train(replace(cfg, train=replace(cfg.train, tensorboard=True)), tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "lr", "val_psnr"):
        want = [(r["step"], r[key]) for r in records if key in r]
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert len(want) >= 2 and [s for s, _ in got] == [s for s, _ in want]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)


def test_training_learns(tmp_path):
    """A short run must raise validation PSNR well above its first measurement."""
    cfg = tiny_run_config(steps=60)
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
    rc = main(["train", "--run-dir", str(tmp_path / "run"), "--pairs", str(tmp_path / "noisy"), str(tmp_path / "clean"),
               "--steps", "2", "--width", "8", "--levels", "2", "--crop", "32", "--batch-size", "2",
               "--val-count", "2", "--log-interval", "1"])
    assert rc == 0 and (tmp_path / "run" / "model.safetensors").exists()


def test_bad_pairs_fail_before_training(tmp_path, capsys):
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "noisy" / "x.png")
    rc = main(["train", "--run-dir", str(tmp_path / "run"), "--pairs", str(tmp_path / "noisy"), str(tmp_path / "clean")])
    assert rc == 2 and "no clean match for x.png" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("schedule", ["cosine", "constant", "step", "onecycle"])
def test_lr_schedules(schedule):
    cfg = replace(tiny_run_config(steps=300).train, schedule=schedule, warmup_steps=10)
    lrs = [lr_at(s, cfg, 300) for s in range(300)]
    assert max(lrs) == pytest.approx(cfg.lr, rel=1e-3) and min(lrs) > 0
    if schedule == "constant":
        assert lrs[-1] == cfg.lr
    else:
        assert lrs[-1] < 0.2 * cfg.lr and lrs[0] < cfg.lr
    if schedule == "step":
        assert len(set(round(v, 12) for v in lrs[10:])) == 3  # three plateaus


@pytest.mark.parametrize("solver,loss,ssim_w", [("adamw", "l1", 0.0), ("adam", "charbonnier", 0.2), ("sgd", "l2", 0.0)])
def test_every_solver_and_loss_trains(tmp_path, solver, loss, ssim_w):
    cfg = tiny_run_config(steps=4)
    cfg = replace(cfg, train=replace(cfg.train, solver=solver, loss=loss, ssim_weight=ssim_w, ema=0.9,
                                     channels_last=True))
    final = train(cfg, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    assert list((tmp_path / "previews").glob("step_*.png"))
    raw, _ = load_checkpoint(tmp_path / "last.safetensors")
    ema_model, _ = load_checkpoint(final)
    assert not torch.equal(raw.outc.weight, ema_model.outc.weight)  # final weights are the EMA


def test_epochs_set_the_step_count(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = tiny_run_config(clean_dirs=(str(folder),), procedural=False)
    cfg = replace(cfg, train=replace(cfg.train, epochs=2))
    train(cfg, tmp_path / "run", progress=False)
    # 9 training images (1 held out) in batches of 4 -> 3 steps an epoch
    assert read_metadata(tmp_path / "run" / "model.safetensors")["step"] == 6


def test_resume_gives_identical_weights(tmp_path):
    cfg = tiny_run_config(steps=8)
    cfg = replace(cfg, train=replace(cfg.train, ema=0.9, snapshot_interval=100))
    straight = train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "halves", progress=False, callback=lambda rec: rec["step"] >= 4)
    assert read_metadata(tmp_path / "halves" / "last.safetensors")["step"] == 4
    resumed = train(cfg, tmp_path / "halves", resume=True, progress=False)
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_sigkill_loses_at_most_one_snapshot_and_never_corrupts(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "denoiser", "train", "--run-dir", str(run), "--steps", "100000", "--width", "8",
           "--levels", "2", "--crop", "32", "--batch-size", "2", "--val-count", "2", "--val-interval", "1000",
           "--snapshot-interval", "5", "--log-interval", "1", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # kill it once a few snapshots have been written
            if (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) > 23:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    logged = max(json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip())
    snap = read_metadata(run / "last.safetensors")["step"]  # loads: not corrupt
    assert logged - snap <= 5
    load_checkpoint(run / "last.safetensors")
    # and the run goes on from there
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["steps"] = snap + 2
    (run / "config.json").write_text(json.dumps(cfg))
    final = train(load_run_config(run), run, resume=True, progress=False)
    assert read_metadata(final)["step"] == snap + 2
    assert not list(run.glob(".*.part"))


def test_mixed_pairs_and_clean_sources(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("noisy", "clean", "photos"):
        (tmp_path / sub).mkdir()
    for i in range(3):
        clean = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(clean).save(tmp_path / "clean" / f"{i}.png")
        Image.fromarray(np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)).save(
            tmp_path / "noisy" / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{i}.png")
    cfg = tiny_run_config(steps=3, pairs=(str(tmp_path / "noisy"), str(tmp_path / "clean")),
                          clean_dirs=(str(tmp_path / "photos"),))
    assert read_metadata(train(cfg, tmp_path / "run", progress=False))["step"] == 3


def test_torchrun_ddp_two_processes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "denoiser",
           "train", "--run-dir", str(run), "--steps", "4", "--width", "8", "--levels", "2", "--crop", "32",
           "--batch-size", "2", "--val-count", "2", "--val-interval", "2", "--log-interval", "2", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    meta = read_metadata(run / "model.safetensors")
    assert meta["world_size"] == 2 and meta["step"] == 4
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]  # rank 0 alone writes
    assert all(r["images_per_s"] > 0 for r in records if "loss" in r)


def test_fine_tuning_the_default_model_on_unseen_noise(tmp_path):
    """Fine-tune the shipped model on pairs with strong coloured, fixed-pattern noise it never
    saw; on held-out pairs of that noise it must beat the starting model."""
    default = REPO / "checkpoints" / "default-color.safetensors"
    rng = np.random.default_rng(0)
    pattern = rng.normal(0, 18, (96, 96, 3)) * np.array([1.0, 0.3, -0.6])  # fixed, channel-correlated

    def make(folder, seed_base, n):
        for sub in ("noisy", "clean"):
            (folder / sub).mkdir(parents=True)
        for i in range(n):
            clean = dead_leaves(96, 3, np.random.default_rng(seed_base + i)).astype(np.float64)
            noisy = np.clip(clean + pattern, 0, 255).astype(np.uint8)
            Image.fromarray(clean.astype(np.uint8)).save(folder / "clean" / f"{i}.png")
            Image.fromarray(noisy).save(folder / "noisy" / f"{i}.png")

    make(tmp_path / "train", 0, 12)
    make(tmp_path / "test", 1000, 4)

    def score(model_path):
        dn = Denoiser.load(model_path, backend="torch")
        vals = []
        for i in range(4):
            noisy = np.asarray(Image.open(tmp_path / "test" / "noisy" / f"{i}.png"), dtype=np.float32) / 255
            clean = np.asarray(Image.open(tmp_path / "test" / "clean" / f"{i}.png"), dtype=np.float32) / 255
            out = dn.denoise_array(noisy)
            vals.append(-10 * np.log10(np.mean((out - clean) ** 2)))
        return float(np.mean(vals))

    rc = main(["train", "--init", str(default), "--pairs", str(tmp_path / "train" / "noisy"),
               str(tmp_path / "train" / "clean"), "--run-dir", str(tmp_path / "run"), "--steps", "40", "--lr", "3e-4",
               "--warmup", "5", "--crop", "64", "--batch-size", "4", "--val-count", "2", "--val-interval", "40",
               "--quiet"])
    assert rc == 0
    assert read_metadata(tmp_path / "run" / "model.safetensors")["model"]["width"] == read_metadata(default)["model"]["width"]
    before, after = score(default), score(tmp_path / "run" / "model.safetensors")
    assert after > before + 0.5, (before, after)


def test_time_budget_schedule_follows_the_clock():
    from denoiser.train.optim import schedule_total

    cfg = replace(tiny_run_config().train, time_budget_s=100.0, warmup_steps=10)
    # the schedule's length is the steps the budget reaches at the pace so far
    assert schedule_total(200, 50.0, cfg, 10**12) == 400
    assert schedule_total(200, 25.0, cfg, 10**12) == 800
    lr_half = lr_at(200, cfg, schedule_total(200, 50.0, cfg, 10**12))
    assert lr_half == pytest.approx(cfg.lr * (cfg.lr_min_factor + 1) / 2, rel=0.05)  # cosine midpoint
    assert lr_at(400, cfg, schedule_total(400, 100.0, cfg, 10**12)) == pytest.approx(cfg.lr * cfg.lr_min_factor,
                                                                                   rel=0.01)
    assert schedule_total(5, 1.0, cfg, 10**12) > 5  # warm-up runs in steps, before any pace is known
    no_budget = replace(cfg, time_budget_s=0.0)
    assert schedule_total(200, 50.0, no_budget, 777) == 777


def _budget_cfg(seconds: float):
    cfg = tiny_run_config(steps=3)  # ignored: the clock ends the run
    return replace(cfg, train=replace(cfg.train, time_budget_s=seconds, warmup_steps=3, val_interval=10**6, threads=1,
                                      snapshot_interval=10**6, log_interval=1, preview_count=0))


def test_time_budget_run_ends_on_the_clock_and_records_its_length(tmp_path):
    cfg = _budget_cfg(3.0)
    final = train(cfg, tmp_path / "run", progress=False)
    meta = read_metadata(final)
    assert meta["step"] > 3 and 3.0 <= meta["elapsed_s"] < 8.0
    assert meta["pixels_seen"] == meta["step"] * cfg.data.batch_size * cfg.data.crop**2
    assert meta["total_steps"] is None and meta["wall_time_s"] == pytest.approx(meta["elapsed_s"], abs=0.5)
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in recs if "lr" in r]
    assert max(lrs) == pytest.approx(cfg.train.lr, rel=0.05)  # warmed up to the peak ...
    assert lrs[-1] < 0.1 * cfg.train.lr  # ... and annealed to the floor as the time ran out
    assert read_metadata(tmp_path / "run" / "last.safetensors")["elapsed_s"] >= 3.0


def test_time_budget_resume_continues_the_same_schedule(tmp_path):
    cfg = _budget_cfg(4.0)
    run = tmp_path / "run"
    train(cfg, run, progress=False, callback=lambda rec: rec.get("time", 0) >= 1.5)
    snap = read_metadata(run / "last.safetensors")
    assert 1.5 <= snap["elapsed_s"] < 4.0  # the time spent travels with the snapshot
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    lr_at_stop = [r["lr"] for r in recs if "lr" in r][-1]
    final = train(replace(cfg, train=replace(cfg.train, time_budget_s=99.0)), run, resume=True, progress=False)
    meta = read_metadata(final)
    assert meta["step"] > snap["step"] and 4.0 <= meta["elapsed_s"] < 9.0  # the run's own budget, not the new one
    after = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    resumed = [r["lr"] for r in after if "lr" in r and r["step"] > snap["step"]]
    assert resumed[0] <= lr_at_stop * 1.05 and resumed[-1] < 0.1 * cfg.train.lr  # no second warm-up


def test_cli_train_takes_an_architecture_and_a_time_budget(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--arch", "s2dcnn", "--width", "8", "--levels", "3", "--time-budget", "2s",
                 "--crop", "32", "--batch-size", "2", "--val-count", "2", "--run-dir", str(run), "--quiet"]) == 0
    model, meta = load_checkpoint(run / "model.safetensors")
    assert model.cfg.arch == "s2dcnn" and model.cfg.unshuffle == 2 and model.cfg.width == 8
    assert meta["elapsed_s"] >= 2.0 and meta["run"]["train"]["time_budget_s"] == 2.0
    assert main(["train", "--time-budget", "soon", "--run-dir", str(tmp_path / "x")]) == 2
    assert "expected a duration such as 90m" in capsys.readouterr().err
    assert main(["train", "--arch", "vit", "--run-dir", str(tmp_path / "y")]) == 2
    assert "unknown architecture 'vit'" in capsys.readouterr().err


def test_ema_warms_up_so_a_run_from_scratch_does_not_average_in_its_random_start():
    from denoiser.train.optim import EMA

    model = torch.nn.Linear(4, 4)
    ema = EMA(model, 0.999)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(100) < 0.92 and ema.decay_at(10**6) == 0.999
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(500):
        ema.update(model, step)
    # 500 fixed-decay updates would keep 0.999**500 = 61 % of the start; warmed up, about 2 %
    share = ((ema.shadow["weight"] - 1.0) / (start["weight"] - 1.0)).mean().item()
    assert 0 < share < 0.05


def test_a_run_records_its_noise_with_presets_expanded(tmp_path):
    """A preset's name can change meaning between versions ("camera" did): the run folder and the
    checkpoint keep the chain itself, so the record says what was trained on."""
    from denoiser.core.config import NOISE_PRESETS, NoiseConfig

    cfg = replace(tiny_run_config(steps=2), noise=NoiseConfig(spec="gaussian:5@3|camera-v1"))
    train(cfg, tmp_path, progress=False)
    spec = json.loads((tmp_path / "config.json").read_text())["noise"]["spec"]
    assert spec == f"gaussian:5@3|{NOISE_PRESETS['camera-v1']}@1"
    assert read_metadata(tmp_path / "model.safetensors")["run"]["noise"]["spec"] == spec


def test_cpu_budget_clock_counts_the_work_not_the_waiting(tmp_path):
    """A niced leg that waits for the CPU must not spend its schedule waiting."""
    cfg = _budget_cfg(60.0)
    cfg = replace(cfg, train=replace(cfg.train, budget_clock="cpu"))
    slept = []

    def stop_after_a_nap(rec):
        if not slept:
            time.sleep(2.0)  # wall time passes, this process uses no CPU
            slept.append(rec["step"])
        return rec["step"] >= 6

    final = train(cfg, tmp_path / "run", progress=False, callback=stop_after_a_nap)
    meta = read_metadata(final)
    assert meta["elapsed_s"] < meta["step"] * 2.0  # CPU seconds: the nap is not in it
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["time"] < 2.0 for r in recs if r["step"] <= slept[0] + 2)
    with pytest.raises(ValueError, match="budget clock"):
        train(replace(cfg, train=replace(cfg.train, budget_clock="sundial")), tmp_path / "bad", progress=False)


def test_a_packed_snapshot_is_a_quarter_of_the_size_and_resumes_the_schedule(tmp_path):
    from denoiser.train.snapshot import pack_snapshot

    cfg = tiny_run_config(steps=16)
    cfg = replace(cfg, train=replace(cfg.train, ema=0.9, snapshot_interval=100))
    run = tmp_path / "run"
    train(cfg, run, progress=False, callback=lambda rec: rec["step"] >= 8)
    snap = run / "last.safetensors"
    packed = pack_snapshot(snap, tmp_path / "packed.safetensors")
    assert packed.stat().st_size < 0.35 * snap.stat().st_size
    meta = read_metadata(packed)
    assert meta["step"] == 8 and meta["run"]["train"]["steps"] == 16 and meta["elapsed_s"] > 0
    from denoiser.core.checkpoint import load_extra_tensors
    ema = {k[4:]: v for k, v in load_extra_tensors(snap).items() if k.startswith("ema.")}
    weights, _ = load_checkpoint(packed)
    for k, v in weights.state_dict().items():  # what it carries is the average, the model that gets shipped
        assert torch.equal(v, ema[k].to(v.dtype)), k
    # carried to another machine: the run folder is its config plus the packed weights
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((run / "config.json").read_text())
    (other / "last.safetensors").write_bytes(packed.read_bytes())
    final = train(cfg, other, resume=True, progress=False)
    assert read_metadata(final)["step"] == 16
    recs = [json.loads(ln) for ln in (other / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in recs if "lr" in r]
    assert lrs[0] < lrs[1]  # fresh Adam moments ramp up again instead of jumping at full rate
    assert recs[-1]["val_psnr"] > 0


def test_amp_auto_is_bf16_exactly_where_the_cpu_computes_it_natively(tmp_path):
    from denoiser.train.trainer import amp_mode, cpu_has_fast_bf16

    cfg = tiny_run_config(steps=2)
    cpu = torch.device("cpu")
    assert amp_mode(cfg, cpu) == ("bf16" if cpu_has_fast_bf16() else "off")
    assert amp_mode(cfg, torch.device("cuda")) == "bf16"
    assert amp_mode(replace(cfg, train=replace(cfg.train, amp="off")), cpu) == "off"
    final = train(cfg, tmp_path / "run", progress=False)
    assert read_metadata(final)["amp"] == amp_mode(cfg, cpu)  # the checkpoint says how it was trained


def test_pixels_seen_adds_up_each_leg_at_its_own_batch(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_run_config(steps=8)
    train(cfg, run, progress=False, callback=lambda rec: rec["step"] >= 4)  # a leg of 4 steps at batch 4
    saved = json.loads((run / "config.json").read_text())
    saved["data"]["batch_size"] = 2  # the next leg trains another batch (as a GPU leg does)
    (run / "config.json").write_text(json.dumps(saved))
    final = train(cfg, run, resume=True, progress=False)
    crop2 = cfg.data.crop**2
    assert read_metadata(final)["pixels_seen"] == 4 * 4 * crop2 + (8 - 4) * 2 * crop2


def test_a_half_packed_snapshot_is_half_a_packed_one_and_resumes_in_float32(tmp_path):
    from denoiser.train.snapshot import pack_snapshot

    cfg = tiny_run_config(steps=8)
    run = tmp_path / "run"
    train(cfg, run, progress=False, callback=lambda rec: rec["step"] >= 4)
    full = pack_snapshot(run / "last.safetensors", tmp_path / "full.safetensors")
    half = pack_snapshot(run / "last.safetensors", tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a, _ = load_checkpoint(full)
    b, _ = load_checkpoint(half)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert w.dtype == torch.float32 and torch.allclose(v, w, rtol=1e-3, atol=1e-6), k
    again = pack_snapshot(full, tmp_path / "again.safetensors", half=True)  # a packed snapshot packs again
    c, _ = load_checkpoint(again)
    for w, x in zip(b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(w, x)  # the same float16 weights as packing the snapshot itself
    assert read_metadata(again)["packed_from"] == "full.safetensors" and read_metadata(again)["step"] == 4
    (run / "last.safetensors").write_bytes(half.read_bytes())
    assert read_metadata(train(cfg, run, resume=True, progress=False))["step"] == 8
