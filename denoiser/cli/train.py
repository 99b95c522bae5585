"""`denoiser train`: its flags, the RunConfig they make, and which config fields a `--resume`
asks to change."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from denoiser.cli.options import DefaultsAndRawEpilog
from denoiser.core.config import (
    AMP_MODES,
    CHANNELS,
    FINETUNE_LR,
    LOSSES,
    SCHEDULES,
    SOLVERS,
    DataConfig,
    ModelConfig,
    NoiseConfig,
    RunConfig,
    TrainConfig,
    parse_duration,
)


def add_parser(sub) -> argparse.ArgumentParser:
    from denoiser.core.noise.spec import (
        noise_help,  # pure Python: --help stays fast (no torch)
    )

    t = sub.add_parser("train", help="train a denoiser", formatter_class=DefaultsAndRawEpilog, epilog=noise_help(),
                       description="Train on synthetic pairs (clean folders and/or procedural images + a noise "
                                   "spec) or on paired noisy/clean folders. Writes a run folder with config.json, "
                                   "metrics.jsonl and checkpoints.")
    groups = {"data": _data_flags, "validation": _validation_flags, "model": _model_flags,
              "optimisation": _optimisation_flags, "run": _run_flags}
    for title, add_flags in groups.items():
        add_flags(t.add_argument_group(title))
    t.set_defaults(func=run)
    return t


def _data_flags(g) -> None:
    D = DataConfig
    g.add_argument("--clean", nargs="*", default=[], metavar="DIR", help="folders of clean images (recursive)")
    g.add_argument("--clean-weights", nargs="*", type=float, default=list(D.clean_weights), metavar="W",
                   help="one share per --clean folder (default: every image equally likely)")
    g.add_argument("--pairs", nargs=2, metavar=("NOISY_DIR", "CLEAN_DIR"), help="paired folders matched by file name")
    g.add_argument("--pairs-weight", type=float, default=D.pairs_weight,
                   help="share of paired crops when --pairs and --clean are mixed")
    g.add_argument("--no-procedural", action="store_true", help="do not mix in procedural dead-leaves images")
    g.add_argument("--procedural-weight", type=float, default=D.procedural_weight,
                   help="share of procedural crops beside --clean folders")
    g.add_argument("--noise", default=NoiseConfig.spec, metavar="SPEC",
                   help="noise spec, e.g. gaussian:5-50, camera, gaussian|camera (kinds listed below)")
    g.add_argument("--quantize-prob", type=float, default=NoiseConfig.quantize_prob,
                   help="share of noisy inputs clipped and rounded to 8 bits")
    g.add_argument("--channels", type=int, default=D.channels, help="1 = gray, 3 = colour")
    g.add_argument("--crop", type=int, default=D.crop, help="training crop size in pixels")
    g.add_argument("--batch-size", type=int, default=D.batch_size, help="crops per step (per process under torchrun)")
    g.add_argument("--workers", type=int, default=D.num_workers, help="data loader processes")
    g.add_argument("--max-pixels", type=int, default=D.max_image_pixels,
                   help="refuse training images larger than this (a guard against decompression bombs)")
    g.add_argument("--data-memory", type=float, default=D.memory_budget / 2**30, metavar="GB",
                   help="decoded training images held in memory (GiB); past it they are read from disk as "
                        "training goes (slower)")


def _validation_flags(g) -> None:
    T, D = TrainConfig, DataConfig
    g.add_argument("--val-dir", metavar="DIR", help="validation folder: clean images, or noisy/ and clean/ pairs")
    g.add_argument("--val-holdout", type=float, default=D.val_holdout,
                   help="without --val-dir: share of training files held out (every k-th by name)")
    g.add_argument("--val-count", type=int, default=D.val_count, help="fixed, seeded validation crops")
    g.add_argument("--val-interval", type=int, default=T.val_interval, help="validate every N steps")
    g.add_argument("--previews", type=int, default=T.preview_count, help="preview rows saved at each validation")


def _model_flags(g) -> None:
    g.add_argument("--arch", default=ModelConfig.arch,
                   help="network: unet (the U-Net of the shipped v1 models), resunet (DRUNet-style residual "
                        "U-Net on a pixel-unshuffled grid), s2dcnn (FFDNet-style conv stack at half resolution)")
    g.add_argument("--width", type=int, default=0, help="channels at the top level (0: the architecture's own)")
    g.add_argument("--levels", type=int, default=0,
                   help="unet/resunet: depth (alignment 2**levels); s2dcnn: conv layers (0: the architecture's own)")
    g.add_argument("--blocks", type=int, default=0,
                   help="conv (unet) or residual (resunet) blocks per level (0: the architecture's own)")
    g.add_argument("--unshuffle", type=int, default=0,
                   help="resunet/s2dcnn: pixel-unshuffle factor at the entry (0: the architecture's own)")
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune from this model (keeps its architecture)")


def _optimisation_flags(g) -> None:
    T = TrainConfig
    g.add_argument("--steps", type=int, default=T.steps, help="optimizer steps")
    g.add_argument("--time-budget", metavar="DURATION",
                   help="train for this wall time instead (90m, 1.5h, 45s): the lr schedule runs over "
                        "time, snapshots keep the time spent, --resume continues the same schedule")
    g.add_argument("--epochs", type=int, default=T.epochs, help="if > 0: train this many epochs instead of --steps")
    g.add_argument("--solver", default=T.solver, choices=list(SOLVERS))
    g.add_argument("--lr", type=float, default=argparse.SUPPRESS,
                   help=f"base (peak) learning rate (default: {T.lr:g}; with --init {FINETUNE_LR:g}, a fine-tuning "
                        "rate that does not undo what the model learned)")
    g.add_argument("--momentum", type=float, default=T.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=T.weight_decay)
    g.add_argument("--schedule", default=T.schedule, choices=list(SCHEDULES))
    g.add_argument("--warmup", type=int, default=T.warmup_steps,
                   help=f"linear warm-up steps, at most {T.warmup_max_share * 100:g}%% of a run counted in steps")
    g.add_argument("--step-every", type=int, default=T.step_every, help="step schedule: decay every N steps (0 = thirds)")
    g.add_argument("--step-gamma", type=float, default=T.step_gamma, help="step schedule: decay factor")
    g.add_argument("--loss", default=T.loss, choices=list(LOSSES))
    g.add_argument("--ssim-weight", type=float, default=T.ssim_weight, help="add w * (1 - SSIM) to the loss")
    g.add_argument("--grad-clip", type=float, default=T.grad_clip, help="max gradient norm (0 = off)")
    g.add_argument("--ema", type=float, default=T.ema, help="EMA decay of weights, e.g. 0.999 (0 = off)")
    g.add_argument("--amp", default=T.amp, choices=list(AMP_MODES),
                   help="mixed precision (auto: bf16 on CUDA and on CPUs with native bf16 such as AVX512-BF16, "
                        "about 2x faster there; off on other CPUs)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convs on tensor cores)")
    g.add_argument("--seed", type=int, default=T.seed)


def _run_flags(g) -> None:
    T = TrainConfig
    g.add_argument("--run-dir", default="runs/latest", help="run folder (config, metrics, checkpoints)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run folder's last snapshot with its own config; --steps, --epochs or "
                        "--time-budget may lengthen it, --device, --threads, the intervals and --workers may "
                        "change, anything else is an error")
    g.add_argument("--device", default=T.device, help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, default=T.threads, help="CPU threads (0 = torch default)")
    g.add_argument("--log-interval", type=int, default=T.log_interval, help="log every N steps")
    g.add_argument("--snapshot-interval", type=int, default=T.snapshot_interval, help="snapshot every N steps")
    g.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard (needs tensorboard)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def run_config(args: argparse.Namespace) -> RunConfig:
    from denoiser.core.nets import arch_config
    from denoiser.core.noise.ops import parse_noise_spec

    if args.channels not in CHANNELS:
        raise ValueError("--channels must be 1 (gray) or 3 (colour)")
    noise = parse_noise_spec(args.noise, args.quantize_prob)
    data = DataConfig(clean_dirs=tuple(args.clean), procedural=not args.no_procedural or not (args.clean or args.pairs),
                      procedural_weight=args.procedural_weight, pairs=tuple(args.pairs) if args.pairs else None,
                      pairs_weight=args.pairs_weight, channels=args.channels, crop=args.crop,
                      batch_size=args.batch_size, num_workers=args.workers, val_count=args.val_count,
                      val_dir=args.val_dir, val_holdout=args.val_holdout, clean_weights=tuple(args.clean_weights),
                      max_image_pixels=args.max_pixels, memory_budget=int(args.data_memory * 2**30))
    model = arch_config(args.arch, channels=args.channels, width=args.width or None, levels=args.levels or None,
                        blocks_per_level=args.blocks or None, unshuffle=args.unshuffle or None)
    lr = args.lr if hasattr(args, "lr") else FINETUNE_LR if args.init else TrainConfig.lr
    tr = TrainConfig(steps=args.steps, time_budget_s=parse_duration(args.time_budget) if args.time_budget else 0.0,
                     epochs=args.epochs, solver=args.solver, lr=lr, momentum=args.momentum,
                     weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup,
                     step_every=args.step_every, step_gamma=args.step_gamma, loss=args.loss,
                     ssim_weight=args.ssim_weight, grad_clip=args.grad_clip, ema=args.ema, amp=args.amp,
                     channels_last=args.channels_last, seed=args.seed, device=args.device,
                     log_interval=args.log_interval, val_interval=args.val_interval,
                     snapshot_interval=args.snapshot_interval, preview_count=args.previews,
                     tensorboard=args.tensorboard, threads=args.threads)
    return RunConfig(noise, data, model, tr)


# `train` flags whose config field has another name; the others set the field of their own name
TRAIN_FLAG_FIELDS = {"clean": ("data.clean_dirs",), "no_procedural": ("data.procedural",), "noise": ("noise.spec",),
                     "workers": ("data.num_workers",), "previews": ("train.preview_count",),
                     "blocks": ("model.blocks_per_level",), "time_budget": ("train.time_budget_s",),
                     "warmup": ("train.warmup_steps",), "channels": ("data.channels", "model.channels"),
                     "max_pixels": ("data.max_image_pixels",), "data_memory": ("data.memory_budget",)}
NOT_CONFIG = {"command", "run_dir", "resume", "init", "quiet"}


def flag_fields(dests: set[str]) -> set[str]:
    """The config fields (e.g. "train.steps") that the given `train` flags set."""
    defaults = RunConfig()
    sections = {f.name: {g.name for g in dataclasses.fields(getattr(defaults, f.name))}
                for f in dataclasses.fields(RunConfig)}
    out = set()
    for dest in dests - NOT_CONFIG:
        named = TRAIN_FLAG_FIELDS.get(dest) or tuple(f"{sec}.{dest}" for sec, fields in sections.items()
                                                     if dest in fields)
        if not named:
            raise AssertionError(f"train flag --{dest} sets no config field")  # a new flag needs an entry above
        out.update(named)
    return out


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the `train` flags written on the command line (not left at their defaults):
    `parser` (the CLI's, fresh) with every default suppressed leaves only those in the namespace."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    sub._defaults.clear()
    for action in sub._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def run(args: argparse.Namespace) -> int:
    from denoiser.train.interrupt import StopOnSignal, TrainingInterrupted
    from denoiser.train.trainer import train

    cfg = run_config(args)
    changes = flag_fields(getattr(args, "given", set())) if args.resume else set()
    with StopOnSignal() as signals:
        try:
            final = train(cfg, args.run_dir, resume=args.resume, init=args.init, progress=not args.quiet,
                          changes=changes, interrupt=lambda: signals.requested)
        except TrainingInterrupted as e:
            print(f"\n{e}; continue with: denoiser train --resume --run-dir {args.run_dir}", file=sys.stderr)
            return e.exit_code
    print(f"final model: {final}")
    return 0
