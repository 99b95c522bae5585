"""Train the shipped default models with the package's own trainer.

    python scripts/train_default.py --datasets ../shared/datasets --model v2-color
    python scripts/train_default.py --datasets ../shared/datasets --model v2-gray

The two v2 recipes make the shipped checkpoints/default-color and default-gray (see the
v2 paragraph below). The five v1 recipes made checkpoints/v1-color and v1-gray, run in this
order (each starts from the weights of the one it names):

    python scripts/train_default.py --datasets ../shared/datasets --model color-base
    python scripts/train_default.py --datasets ../shared/datasets --model color
    python scripts/train_default.py --datasets ../shared/datasets --model gray
    python scripts/train_default.py --datasets ../shared/datasets --model color-polish
    python scripts/train_default.py --datasets ../shared/datasets --model gray-polish

- color-base: from random weights. CBSD432 colour photos (5 % held out by name for
  validation) plus 30 % procedural dead-leaves crops; blind Gaussian noise, sigma uniform in
  [0, 75]; half of the samples clipped and rounded to 8 bits as real uploads are.
- color: fine-tunes color-base on the blind mix users meet: Gaussian sigma 0-75 (three
  quarters of the samples) or the "camera-v1" chain (shot + read noise, demosaic-correlated
  noise, JPEG). Larger crops, as the model's receptive field is 59 px.
- gray: starts from color-base turned into a 1-channel model (nets.gray_from_color: the
  same function on gray input, so it begins at the colour model's gray quality) and trains on
  Train400 plus CBSD432 read as gray, with the same noise mix.
- color-polish, gray-polish: continue color and gray on the same data and noise at half the
  learning rate, with an EMA of the weights (what gets saved) and channels-last tensors
  (8-20 % faster on this CPU). The validation curves of color and gray were still rising
  when their cosine schedules ended; checkpoints/v1-color and v1-gray come from these.

- v2-color, v2-gray: the v2 architecture (V2_ARCH, chosen by scripts/study_arch.py) from
  random weights on the same data, with the camera pipeline in the noise mix, EMA, over one
  V2_HOURS-hour schedule of CPU time run in legs across sessions (--leg, --resume; --pack
  makes the committable copy in checkpoints/wip/). The shipped default models since issue 15.

Set12 is never seen here: it is the evaluation set. Each run writes its folder (config,
metrics, previews, snapshots); the final weights are copied to checkpoints/ unless
--install-as ''. A killed run continues with --resume.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from denoiser.core.checkpoint import load_model, save_checkpoint
from denoiser.core.config import (
    DataConfig,
    ModelConfig,
    NoiseConfig,
    RunConfig,
    TrainConfig,
    parse_duration,
)
from denoiser.core.nets import gray_from_color
from denoiser.train.interrupt import StopOnSignal, TrainingInterrupted
from denoiser.train.revive import hidden_channels, revive
from denoiser.train.snapshot import pack_snapshot
from denoiser.train.trainer import (
    build_data,
    load_run_config,
    make_pair,
    train,
)

# "camera-v1" is what "camera" meant when the shipped models were trained (config.NOISE_PRESETS).
BLIND_MIX = "gaussian:0-75@3|camera-v1"

COLOR_BASE = RunConfig(
    noise=NoiseConfig(spec="gaussian:0-75", quantize_prob=0.5),
    data=DataConfig(procedural=True, procedural_weight=0.3, channels=3, crop=64, batch_size=16,
                    val_count=16, val_crop=128),
    model=ModelConfig(channels=3, width=24, levels=3, blocks_per_level=2),
    train=TrainConfig(steps=2000, lr=1e-3, warmup_steps=50, seed=0, val_interval=250, snapshot_interval=250),
)
COLOR = replace(
    COLOR_BASE,
    noise=NoiseConfig(spec=BLIND_MIX, quantize_prob=0.5),
    data=replace(COLOR_BASE.data, crop=96, batch_size=12),
    train=replace(COLOR_BASE.train, steps=4000, lr=5e-4, seed=1),
)
GRAY = replace(COLOR, model=replace(COLOR.model, channels=1), data=replace(COLOR.data, channels=1, gray_prob=0.0,
                                                                            procedural_weight=0.2),
               train=replace(COLOR.train, seed=2))


def polish(cfg: RunConfig, seed: int) -> RunConfig:
    """Continue `cfg`'s model at half its lr, saving an EMA of the weights; channels-last is faster here."""
    return replace(cfg, train=replace(cfg.train, seed=seed, lr=cfg.train.lr / 2, ema=0.999, channels_last=True))


COLOR_POLISH = polish(COLOR, seed=3)
GRAY_POLISH = polish(GRAY, seed=4)

# v2: the architecture scripts/study_arch.py chose (BENCHMARKS.md, "Architecture study"), from
# scratch, one schedule of V2_HOURS of wall time per model. That is more than a session has, so
# it runs in legs (--leg 45m, then --resume in the next session: the schedule, the EMA and the
# time spent carry over in the snapshot).
V2_ARCH = "resunet"
V2_HOURS = 8.0
# Colour: the winner of the noise mix study (BENCHMARKS.md, "Noise mix study"): half Gaussian, a
# quarter the camera pipeline widened to phone sensors (higher ISO, lighter in-camera smoothing),
# a quarter correlated Gaussian: +3 dB on real SIDD12 noise over the v1 mix at equal CPU time.
# Gray: the camera pipeline in a quarter of its crops (gray users are mostly scanners, not phones).
# Leg 1 ran with "gaussian:0-75@3|camera" for both.
V2_COLOR_MIX = ("gaussian:0-75@2|camera:iso=400-51200,blur=0-0.8,chroma=0-2|"
                "correlated:sigma=2-40,scale=0.5-2")
V2_GRAY_MIX = "gaussian:0-75@3|camera"


# Peak lr 1e-4 (DRUNet's), not the study's 1e-3: at 1e-3 Adam killed 1048 of the 1408 hidden
# channels of the gray model's residual blocks within 38 minutes (every coarse level; see
# denoiser/train/revive.py), and the model trained on as a shallow one without a sign in its loss.
V2_LR = 1e-4


def v2(cfg: RunConfig, seed: int, mix: str) -> RunConfig:
    from study_arch import CANDIDATES

    model = replace(CANDIDATES[V2_ARCH], channels=cfg.model.channels)
    # Crop 128 x 7 instead of 96 x 12: the same pixels per step (as fast, BENCHMARKS.md "Training
    # speed of the v2 architecture") and more context for a 209-pixel receptive field.
    # Contiguous tensors: channels-last was 13 % slower for this network on this CPU.
    # The budget counts this process's CPU seconds: the legs run niced beside tests and
    # benchmarks, and a wall-clock schedule would decay while they wait for a core.
    return replace(cfg, model=model, data=replace(cfg.data, crop=128, batch_size=7),
                   noise=replace(cfg.noise, spec=mix),
                   train=replace(cfg.train, seed=seed, lr=V2_LR, ema=0.999, channels_last=False,
                                 time_budget_s=V2_HOURS * 3600, budget_clock="cpu", val_interval=500,
                                 snapshot_interval=250))


V2_COLOR = v2(COLOR, seed=5, mix=V2_COLOR_MIX)
V2_GRAY = v2(GRAY, seed=6, mix=V2_GRAY_MIX)

# v2 L2 polish: the v2 L1 schedules flattened (+0.01 dB in their last 1.7 CPU hours), and PSNR is
# the mean squared error's score, so the next stage changes the loss, not the length: the same
# data and noise mix, MSE, a fresh cosine schedule from a fifth of v2's peak lr (10x v2's floor).
V2_L2_HOURS = 1.75


def v2_l2(cfg: RunConfig, seed: int) -> RunConfig:
    return replace(cfg, train=replace(cfg.train, seed=seed, loss="l2", lr=V2_LR / 5,
                                      time_budget_s=V2_L2_HOURS * 3600))


V2_COLOR_L2 = v2_l2(V2_COLOR, seed=7)
V2_GRAY_L2 = v2_l2(V2_GRAY, seed=8)

# recipe -> (config, folders under --datasets, warm start: None or (recipe, convert to gray))
RECIPES: dict[str, tuple[RunConfig, tuple[str, ...], tuple[str, bool] | None]] = {
    "color-base": (COLOR_BASE, ("CBSD432",), None),
    "color": (COLOR, ("CBSD432",), ("color-base", False)),
    "gray": (GRAY, ("Train400", "CBSD432"), ("color-base", True)),
    "color-polish": (COLOR_POLISH, ("CBSD432",), ("color", False)),
    "gray-polish": (GRAY_POLISH, ("Train400", "CBSD432"), ("gray", False)),
    "v2-color": (V2_COLOR, ("CBSD432",), None),
    "v2-gray": (V2_GRAY, ("Train400", "CBSD432"), None),
    "v2-color-l2": (V2_COLOR_L2, ("CBSD432",), ("v2-color", False)),
    "v2-gray-l2": (V2_GRAY_L2, ("Train400", "CBSD432"), ("v2-gray", False)),
}
INSTALL = {"color-base": "", "color": "", "gray": "",
           "color-polish": "checkpoints/v1-color.safetensors",
           "gray-polish": "checkpoints/v1-gray.safetensors",
           "v2-color": "checkpoints/default-color.safetensors",
           "v2-gray": "checkpoints/default-gray.safetensors",
           "v2-color-l2": "", "v2-gray-l2": ""}  # installed by hand once scored against v2


def revive_run(run: Path, recipe: RunConfig, probe_crops: int = 48) -> dict[str, int]:
    """Revive the dead channels of `run`'s snapshot in place (the old one is kept beside it).

    The probe is what the model trains on: crops of the run's own data with its own noise mix.
    The raw weights are revived, not the EMA: the EMA restarts from them on resume. The run then
    takes the recipe's learning rate and budget clock (its config.json is rewritten): Adam
    restarts anyway, and the rate that killed the channels would kill them again.
    """
    snapshot = run / "last.safetensors"
    if not snapshot.exists():
        raise SystemExit(f"{snapshot} not found: nothing to revive")
    cfg = load_run_config(run)
    data = build_data(cfg, torch.device("cpu"))
    gen = torch.Generator().manual_seed(cfg.train.seed + 31337)
    picks = torch.randint(len(data.dataset), (probe_crops,), generator=gen).tolist()
    items = [data.dataset[i] for i in picks]  # clean crops, or (noisy, clean[, is_paired]) for pairs
    clean = torch.stack([item if isinstance(item, torch.Tensor) else item[1] for item in items])
    _, noisy = make_pair(clean, cfg, gen)
    model, meta = load_model(snapshot)
    before = hidden_channels(model)
    revived = revive(model, noisy, gen)
    shutil.copyfile(snapshot, run / "last.pre-revive.safetensors")
    save_checkpoint(snapshot, model, **meta.carried(), revived=revived)
    cfg_path = run / "config.json"
    saved = json.loads(cfg_path.read_text())
    saved["train"].update(lr=recipe.train.lr, budget_clock=recipe.train.budget_clock)
    cfg_path.write_text(json.dumps(saved, indent=2, sort_keys=True))
    dead = sum(revived.values())
    print(f"revived {dead} of {before} hidden channels in {len(revived)} blocks "
          f"({', '.join(f'{k}: {v}' for k, v in revived.items()) or 'none dead'}); "
          f"old snapshot kept as {run / 'last.pre-revive.safetensors'}")
    return revived


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=list(RECIPES), default="v2-color",
                    help="which recipe (default: color-polish)")
    ap.add_argument("--datasets", default="../shared/datasets", help="folder holding CBSD432/ and Train400/")
    ap.add_argument("--run", default=None, help="run folder to write (default: runs/default-MODEL)")
    ap.add_argument("--init", default=None,
                    help="warm-start checkpoint (default: runs/default-R/model.safetensors, R being the "
                         "recipe this one starts from)")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    ap.add_argument("--time-budget", metavar="DURATION",
                    help="train for this wall time instead of steps (90m, 1.5h, 45s): the lr schedule runs over time")
    ap.add_argument("--device", default="auto",
                    help="auto | cpu | cuda; on CUDA the run uses bf16 autocast and channels-last tensors")
    ap.add_argument("--leg", metavar="DURATION",
                    help="stop this process after this wall time, with a snapshot, before the run is done "
                         "(a recipe whose --time-budget spans sessions); --resume continues the same schedule")
    ap.add_argument("--leg-clock", choices=("wall", "cpu"), default="wall",
                    help="what --leg counts: wall time, or this process's CPU seconds (legs that must get "
                         "equal training on a shared machine, such as the forks of scripts/study_mix.py)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--resume", action="store_true", help="continue the run folder's last snapshot")
    ap.add_argument("--install-as", default=None, help="where to copy the final model ('' to skip)")
    ap.add_argument("--revive", action="store_true",
                    help="instead of training: re-initialise the dead ReLU channels of the run folder's snapshot "
                         "(denoiser/train/revive.py; the model's output is unchanged), keep the old snapshot as "
                         "last.pre-revive.safetensors, and write a packed snapshot that --resume continues "
                         "with fresh Adam moments")
    ap.add_argument("--pack", metavar="DIR",
                    help="instead of training: copy the run folder's config, metrics and packed snapshot "
                         "(averaged weights + progress, a quarter of the snapshot) to DIR, to commit; "
                         "copy DIR back to the run folder and --resume to continue")
    ap.add_argument("--half", action="store_true",
                    help="with --pack: float16 weights, an eighth of the snapshot (what checkpoints/wip/ holds)")
    args = ap.parse_args()
    if args.pack:
        run = Path(args.run or f"runs/default-{args.model}")
        out = Path(args.pack)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "metrics.jsonl"):
            shutil.copyfile(run / name, out / name)
        print(f"packed {pack_snapshot(run / 'last.safetensors', out / 'last.safetensors', half=args.half)}")
        return

    cfg, folders, warm = RECIPES[args.model]
    run = Path(args.run or f"runs/default-{args.model}")
    if args.revive:
        revive_run(run, cfg)
        return
    dirs = tuple(str(Path(args.datasets) / f) for f in folders)
    for d in dirs if not args.resume else ():  # a resumed run reads the data its config.json names
        if not Path(d).is_dir():
            raise SystemExit(f"{d} not found: pass --datasets pointing at the folder that holds {', '.join(folders)}")
    budget = parse_duration(args.time_budget) if args.time_budget else cfg.train.time_budget_s
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    cfg = replace(cfg, data=replace(cfg.data, clean_dirs=dirs),
                  train=replace(cfg.train, steps=args.steps or cfg.train.steps, time_budget_s=budget,
                                device=args.device, threads=args.threads,
                                amp="bf16" if cuda else cfg.train.amp,  # "auto" says the same; stated for the record
                                channels_last=cfg.train.channels_last or cuda))
    init = None
    if warm and not args.resume:
        source = Path(args.init or f"runs/default-{warm[0]}/model.safetensors")
        if not source.exists():
            raise SystemExit(f"{source} not found: train --model {warm[0]} first, or pass --init")
        init = source
        if warm[1]:  # the trainer keeps the init model's architecture, so convert it first
            colour, meta = load_model(source)
            init = save_checkpoint(run / "init-gray.safetensors", gray_from_color(colour),
                                   converted_from=str(source), metrics=meta.metrics)
    t0 = time.time()
    leg = parse_duration(args.leg) if args.leg else None
    leg_clock = time.process_time if args.leg_clock == "cpu" else time.time
    leg_start = leg_clock()
    leg_over = []

    def end_of_leg(rec: dict) -> bool:
        if leg is not None and leg_clock() - leg_start >= leg:
            leg_over.append(rec["step"])
        return bool(leg_over)

    with StopOnSignal() as signals:  # Ctrl-C / SIGTERM (kill, a session's end): snapshot, then exit
        try:
            final = train(cfg, run, resume=args.resume, init=str(init) if init else None, callback=end_of_leg,
                          interrupt=lambda: signals.requested)
        except TrainingInterrupted as e:
            print(f"\n{e}; continue with --resume --run {run}", file=sys.stderr)
            raise SystemExit(e.exit_code) from None
    print(f"trained in {(time.time() - t0) / 60:.1f} min -> {final}")
    if leg_over:
        print(f"leg over at step {leg_over[0]}: the run is not done; continue it with --resume "
              f"(snapshot {run / 'last.safetensors'})")
        return
    install = INSTALL[args.model] if args.install_as is None else args.install_as
    if install:
        Path(install).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, install)
        print(f"installed as {install}")


if __name__ == "__main__":
    main()
