"""A run's snapshot (last.safetensors): the weights plus what resuming needs to go on bit for bit
(optimizer moments, EMA shadow, the noise generator's state), and its packed form for carrying.

Optimizer state goes in as tensors + JSON metadata, never as a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from denoiser.core.checkpoint import load_extra_tensors, load_model, save_checkpoint
from denoiser.core.metadata import MetadataError
from denoiser.train.optim import EMA


def snapshot_tensors(opt: torch.optim.Optimizer, ema: EMA | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The tensors a snapshot carries besides the weights (param_groups go in the metadata)."""
    tensors = {}
    for idx, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    if ema:
        tensors.update({f"ema.{k}": v for k, v in ema.shadow.items()})
    tensors["rng.noise"] = gen.get_state()
    return tensors


def restore(path: Path, model, opt, ema: EMA | None, gen: torch.Generator, device) -> tuple[int, float, bool]:
    """Load a snapshot into the objects; return (step, elapsed_s, whether the optimizer state was in it).

    A packed snapshot (`pack_snapshot`) holds only the averaged weights: the model and the EMA
    both start from them, Adam's moments start afresh, and the noise generator is re-seeded from
    the step, so the run goes on with the same schedule but not bit for bit.
    """
    loaded, meta = load_model(path, device)
    model.load_state_dict(loaded.state_dict())
    extra = load_extra_tensors(path, device)
    state: dict = {}
    if ema:
        ema.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    for key, v in extra.items():
        if key.startswith("opt."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v.cpu() if k == "step" else v
        elif key.startswith("ema.") and ema:
            ema.shadow[key[4:]] = v.float()
    if meta.step is None:  # a converted or packed-by-hand file: not where a run left off
        raise MetadataError(f"{path}: damaged denoiser metadata (KeyError: 'step')")
    step = meta.step
    if state:
        opt.load_state_dict({"state": state, "param_groups": meta.param_groups})
    if "rng.noise" in extra:
        gen.set_state(extra["rng.noise"].cpu())  # generator states are CPU byte tensors on any device
    else:
        seed = (meta.run or {}).get("train", {}).get("seed", 0)  # the run config stays a plain dict
        gen.manual_seed(int(seed) + 104729 * step)
    return step, float(meta.elapsed_s or 0.0), bool(state)


def pack_snapshot(snapshot: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write `snapshot` as its averaged weights plus its progress metadata, a quarter of its size
    (an eighth with `half`: float16 weights, which resume as float32).

    For carrying a long run across machines in git or to a lent GPU: optimizer moments and RNG
    state are three quarters of a snapshot and are rebuilt on resume (see `restore`). Float16
    rounds each weight by under 0.05 %, once per trip: far below what a step of training moves.
    """
    model, meta = load_model(snapshot)
    extra = load_extra_tensors(snapshot)
    shadow = {k[4:]: v for k, v in extra.items() if k.startswith("ema.")}
    if shadow:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in shadow.items()})
    # A packed snapshot packs again (to float16, say): its own `packed_from` gives way to this one.
    carried = {**meta.carried(), "packed_from": Path(snapshot).name}
    return save_checkpoint(out, model.half() if half else model, **carried)


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop records a killed run wrote after its last snapshot: they will be written again."""
    path = run_dir / "metrics.jsonl"
    if path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and _record_step(ln) <= step]
        path.write_text("".join(ln + "\n" for ln in keep))


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError):
        return 1 << 62
