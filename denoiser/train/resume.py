"""What `--resume` may change about a run, and a clear refusal of the rest.

A resumed run is the same experiment: its config.json wins. What may change is how long it
runs (`steps`, `epochs`, or `time_budget_s`, each only for a run counted that way and never
below what is done) and how it is run and watched (device, threads, intervals, workers). A
change asked for anything else, which the run cannot honour without becoming another
experiment, is an error naming each one; silently ignoring it would be worse.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from denoiser.core.config import RunConfig, from_dict
from denoiser.core.noise.ops import parse_noise_spec

LENGTH = {"train.steps", "train.epochs", "train.time_budget_s"}
HOW_IT_RUNS = {"train.device", "train.threads", "train.log_interval", "train.val_interval",
               "train.snapshot_interval", "train.preview_count", "train.tensorboard", "data.num_workers",
               "data.memory_budget"}  # where the images are held, not which
RESUMABLE = LENGTH | HOW_IT_RUNS


def _get(cfg: RunConfig, name: str):
    section, field = name.split(".")
    return getattr(getattr(cfg, section), field)


def _set(cfg: RunConfig, name: str, value) -> RunConfig:
    section, field = name.split(".")
    return replace(cfg, **{section: replace(getattr(cfg, section), **{field: value})})


def resumed_config(run_dir: Path, asked: RunConfig, changes: Iterable[str]) -> RunConfig:
    """The run folder's config with the changes in `changes` (dotted field names, e.g.
    "train.steps") taken from `asked`; ValueError listing every change it cannot make."""
    path = run_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    saved = from_dict(RunConfig, json.loads(path.read_text()))
    asked = replace(asked, noise=parse_noise_spec(asked.noise.spec, asked.noise.quantize_prob))  # as saved
    cfg, refused = saved, []
    for name in sorted(set(changes)):
        have, want = _get(saved, name), _get(asked, name)
        if want == have:
            continue
        why = _why_not(saved, name, want)
        if why:
            refused.append(f"{name} {have!r} -> {want!r} ({why})")
        else:
            cfg = _set(cfg, name, want)
    if refused:
        raise ValueError("--resume continues the run as it was set up and cannot change: " + "; ".join(refused)
                         + ". Start a new --run-dir (with --init from this run's model) to change them")
    return cfg


def _why_not(saved: RunConfig, name: str, value) -> str | None:
    t = saved.train
    counted_by = ("train.time_budget_s" if t.time_budget_s > 0 else "train.epochs" if t.epochs > 0
                  else "train.steps")
    if name in LENGTH and name != counted_by:
        return f"the run's length is set by {counted_by.split('.')[1]}"
    if name in LENGTH and not value > 0:
        return "must be positive"
    if name not in RESUMABLE:
        return "it would make another experiment"
    return None


def check_progress(cfg: RunConfig, done_step: int, total_steps: int, elapsed_s: float) -> None:
    """A length asked on resume must not lie behind what the run has done already."""
    t = cfg.train
    if t.time_budget_s > 0 and t.time_budget_s < elapsed_s:
        raise ValueError(f"the run has trained for {elapsed_s:.0f} s already, more than the "
                         f"{t.time_budget_s:.0f} s asked: resume with a longer --time-budget")
    if t.time_budget_s <= 0 and total_steps < done_step:
        raise ValueError(f"the run is at step {done_step} already, past the {total_steps} steps asked: "
                         "resume with more --steps (or --epochs)")
