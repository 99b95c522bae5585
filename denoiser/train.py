"""One training loop, the same on one CPU, one GPU, or many under torchrun (DDP).

A run folder holds config.json (the resolved RunConfig), metrics.jsonl (one JSON record per
logged step and per validation), last.safetensors (snapshot incl. optimizer state, for
--resume), best.safetensors (best validation PSNR) and model.safetensors (final weights).
Under DDP every rank trains on its own shard of the index stream; only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file

from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .config import ModelConfig, RunConfig, dumps, from_dict, to_dict
from .data import CleanCrops, CleanImages, PairedFolder, build_training_data
from .metrics import psnr, ssim
from .model import UNet, count_parameters
from .noise import synthesize

Callback = Callable[[dict], "bool | None"]  # gets each metrics record; True asks to stop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warm-up, then cosine decay to lr * lr_min_factor."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    floor = t.lr * t.lr_min_factor
    return floor + 0.5 * (t.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def validation_set(cfg: RunConfig, dataset, held_out: CleanImages | None, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (noisy, clean) crops: seeded, identical across runs and resumes."""
    d = cfg.data
    seed = 1_000_003  # a seed namespace of its own: never equal to a training index stream
    if isinstance(dataset, PairedFolder):
        # indices far past any training stream: fixed crops (the images themselves are shared)
        noisy, clean = zip(*(dataset[seed + i] for i in range(d.val_count)))
        return torch.stack(noisy).to(device), torch.stack(clean).to(device)
    if held_out is not None and held_out.images:
        crop = min(d.val_crop, *(min(im.shape[:2]) for im in held_out.images))
        source = CleanCrops(held_out, crop, d.channels, 0.0, seed)
    else:
        source = CleanCrops(CleanImages([], []), d.val_crop, d.channels, 1.0, seed)
    clean = torch.stack([source[i] for i in range(d.val_count)]).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    return synthesize(clean, cfg.noise, gen), clean


def _save_snapshot(path: Path, model, opt, step: int, gen: torch.Generator, meta: dict) -> None:
    # Optimizer state goes in as tensors + JSON, never as a pickle.
    tensors = {}
    for idx, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.noise"] = gen.get_state()
    save_checkpoint(path, model, **meta, step=step, param_groups=opt.state_dict()["param_groups"],
                    snapshot_tensors=sorted(tensors))
    from safetensors.torch import save_file

    side = path.with_suffix(".state.safetensors")
    tmp = side.with_name(side.name + ".part")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, side)


def _load_snapshot(path: Path, model, opt, gen: torch.Generator, device) -> int:
    meta = read_metadata(path)
    model.load_state_dict(load_file(str(path), device=str(device)))
    side = load_file(str(path.with_suffix(".state.safetensors")), device=str(device))
    state: dict = {}
    for key, v in side.items():
        if key.startswith("opt."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v.cpu() if k == "step" else v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(side["rng.noise"].cpu())  # generator states are CPU byte tensors on any device
    return int(meta["step"])


class Progress:
    """A one-line terminal progress bar (rewritten in place on a TTY, plain lines otherwise)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.tty = total, enabled, sys.stderr.isatty()

    def update(self, step: int, rec: dict, eta_s: float) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * step / self.total)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} loss {rec['loss']:.4f} "
                f"lr {rec['lr']:.2e} {rec['images_per_s']:.1f} img/s ETA {eta_s / 60:.1f} min")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            print(("\n" if self.tty else "") + text, file=sys.stderr, flush=True)


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False, init: str | None = None,
          callback: Callback | None = None, progress: bool = True) -> Path:
    """Train; return the path of the final checkpoint (run_dir/model.safetensors)."""
    run_dir = Path(run_dir)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        rank, world, device = 0, 1, resolve_device(cfg.train.device)
    main_rank = rank == 0
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)

    if init:  # fine-tuning keeps the starting model's architecture
        model, init_meta = load_checkpoint(init, device)
        cfg = RunConfig(cfg.noise, cfg.data, model.cfg, cfg.train)
    model = UNet(cfg.model).to(device) if not init else model.train()
    if cfg.model.channels != cfg.data.channels:
        raise ValueError(f"model has {cfg.model.channels} channels but data has {cfg.data.channels}")
    dataset, held_out = build_training_data(cfg.data, cfg.train.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    gen = torch.Generator(device=device).manual_seed(cfg.train.seed + 7919 * rank)
    step = 0
    snapshot = run_dir / "last.safetensors"
    if resume:
        if not snapshot.exists():
            raise FileNotFoundError(f"nothing to resume: {snapshot} does not exist")
        saved = from_dict(RunConfig, json.loads((run_dir / "config.json").read_text()))
        if saved.model != cfg.model:
            raise ValueError("--resume: the run folder's model config differs from the requested one")
        step = _load_snapshot(snapshot, model, opt, gen, device)
    elif main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(dumps(cfg))
    val_noisy, val_clean = validation_set(cfg, dataset, held_out, device)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model

    from .data import make_loader

    remaining = cfg.train.steps - step
    loader = make_loader(dataset, cfg.data, step * cfg.data.batch_size, max(0, remaining) * cfg.data.batch_size,
                         rank, world)
    meta = {"run": to_dict(cfg), "parameters": count_parameters(model)}
    if init:
        meta["init"] = {"path": str(init), "metrics": init_meta.get("metrics")}
    metrics_file = (run_dir / "metrics.jsonl").open("a") if main_rank else None
    bar = Progress(cfg.train.steps, progress and main_rank)
    best = -math.inf
    start, t_log, imgs_since = time.time(), time.time(), 0
    stop = False

    def log(rec: dict) -> bool:
        if metrics_file:
            metrics_file.write(json.dumps(rec) + "\n")
            metrics_file.flush()
        return bool(callback(rec)) if callback else False

    model.train()
    for batch in loader:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        if isinstance(batch, (list, tuple)):
            noisy, clean = (t.to(device, non_blocking=True) for t in batch)
        else:
            clean = batch.to(device, non_blocking=True)
            noisy = synthesize(clean, cfg.noise, gen)
        loss = F.l1_loss(net(noisy), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        step += 1
        imgs_since += clean.shape[0] * world

        if step % cfg.train.log_interval == 0 or step == cfg.train.steps:
            loss_v = loss.detach()
            if ddp:
                dist.all_reduce(loss_v, op=dist.ReduceOp.AVG)
            now = time.time()
            rec = {"step": step, "loss": loss_v.item(), "lr": lr_at(step - 1, cfg),
                   "images_per_s": imgs_since / max(now - t_log, 1e-9), "time": now - start}
            t_log, imgs_since = now, 0
            stop = log(rec) or stop
            bar.update(step, rec, (now - start) / max(1, step - (cfg.train.steps - remaining)) * (cfg.train.steps - step))
        if step % cfg.train.val_interval == 0 or step == cfg.train.steps:
            model.eval()
            with torch.no_grad():
                out = model(val_noisy).clamp(0, 1)
            model.train()
            rec = {"step": step, "val_psnr": psnr(out, val_clean).mean().item(),
                   "val_ssim": ssim(out, val_clean).mean().item(), "time": time.time() - start}
            stop = log(rec) or stop
            if main_rank and rec["val_psnr"] > best:
                best = rec["val_psnr"]
                save_checkpoint(run_dir / "best.safetensors", model, **meta, step=step,
                                metrics={"val_psnr": rec["val_psnr"], "val_ssim": rec["val_ssim"]})
            bar.message(f"step {step}: val PSNR {rec['val_psnr']:.2f} dB, SSIM {rec['val_ssim']:.4f}")
        if main_rank and (step % cfg.train.snapshot_interval == 0 or step == cfg.train.steps or stop):
            _save_snapshot(snapshot, model, opt, step, gen, meta)
        if stop:
            bar.message(f"stopped at step {step} on request")
            break

    final = run_dir / "model.safetensors"
    if main_rank:
        save_checkpoint(final, model, **meta, step=step, wall_time_s=time.time() - start,
                        metrics={"val_psnr_best": best}, device=str(device), world_size=world)
        metrics_file.close()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return final


def load_run_config(run_dir: str | Path) -> RunConfig:
    return from_dict(RunConfig, json.loads((Path(run_dir) / "config.json").read_text()))


__all__ = ["train", "lr_at", "load_run_config", "resolve_device", "ModelConfig"]
