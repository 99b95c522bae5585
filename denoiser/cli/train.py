"""`denoiser train`: its flags as a RunConfig, and which config fields a `--resume` asks to change.

The flags themselves are declared with the others in cli.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from denoiser.core.config import (
    FINETUNE_LR,
    DataConfig,
    RunConfig,
    TrainConfig,
    parse_duration,
)


def run_config(args: argparse.Namespace) -> RunConfig:
    from denoiser.core.nets import arch_config
    from denoiser.core.noise.ops import parse_noise_spec

    if args.channels not in (1, 3):
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


def train_command(args: argparse.Namespace) -> int:
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
