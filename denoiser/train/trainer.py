"""One training loop, the same on one CPU, one GPU, or many under torchrun (DDP).

A run folder holds config.json (the resolved RunConfig), metrics.jsonl (one JSON record per
logged step and per validation), previews/ (noisy | output | clean at each validation),
last.safetensors (snapshot with optimizer/EMA/RNG state, for --resume; written atomically),
best.safetensors (best validation PSNR) and model.safetensors (final weights).

Determinism: data item i is a pure function of (seed, i), the learning rate a pure function of
the step, and the noise generator's state is in the snapshot, so on the CPU N steps straight
and N/2 + resume + N/2 give identical weights. Under DDP every rank trains on its own shard of
the index stream; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.distributed as dist

from denoiser.core.atomic import atomic_write
from denoiser.core.checkpoint import (
    load_checkpoint,
    load_extra_tensors,
    read_metadata,
    save_checkpoint,
)
from denoiser.core.config import RunConfig, from_dict, to_dict
from denoiser.core.data import make_loader
from denoiser.core.metrics import psnr, ssim, training_loss
from denoiser.core.nets import build_model, count_parameters
from denoiser.core.noise.ops import parse_noise_spec, synthesize
from denoiser.train.interrupt import TrainingInterrupted
from denoiser.train.monitor import Callback, MetricsLog, Progress, save_preview
from denoiser.train.optim import EMA, lr_at, make_optimizer, schedule_total
from denoiser.train.resume import check_progress, resumed_config
from denoiser.train.validation import VAL_SEED, TrainingData, build_data  # noqa: F401 (scripts import them from here)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_pair(clean: torch.Tensor, cfg: RunConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, noisy) from a clean colour batch; a `gray_prob` share of it becomes gray images
    whose noise is drawn once and repeated in all channels, as in a gray file read as RGB."""
    noisy = synthesize(clean, cfg.noise, gen)
    if cfg.data.gray_prob <= 0 or clean.shape[1] != 3:
        return clean, noisy
    pick = (torch.rand(clean.shape[0], generator=gen, device=clean.device) < cfg.data.gray_prob).view(-1, 1, 1, 1)
    gray = clean.mean(1, keepdim=True)
    gray_noisy = synthesize(gray, cfg.noise, gen)
    return (torch.where(pick, gray.expand_as(clean), clean),
            torch.where(pick, gray_noisy.expand_as(noisy), noisy))


UNBOUNDED_STEPS = 10**12  # a time-budgeted run's loader: the clock ends it, not the count


def total_steps(cfg: RunConfig, items: int, world: int) -> int:
    if cfg.train.time_budget_s > 0:
        return UNBOUNDED_STEPS
    if cfg.train.epochs <= 0:
        return cfg.train.steps
    return cfg.train.epochs * max(1, math.ceil(items / (cfg.data.batch_size * world)))


def _snapshot_tensors(opt, ema: EMA | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
    # Optimizer state goes in as tensors + JSON, never as a pickle.
    tensors = {}
    for idx, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    if ema:
        tensors.update({f"ema.{k}": v for k, v in ema.shadow.items()})
    tensors["rng.noise"] = gen.get_state()
    return tensors


def _restore(path: Path, model, opt, ema: EMA | None, gen: torch.Generator, device) -> tuple[int, float, bool]:
    """Load a snapshot into the objects; return (step, elapsed_s, whether the optimizer state was in it).

    A packed snapshot (`pack_snapshot`) holds only the averaged weights: the model and the EMA
    both start from them, Adam's moments start afresh, and the noise generator is re-seeded from
    the step, so the run goes on with the same schedule but not bit for bit.
    """
    meta = read_metadata(path)
    loaded, _ = load_checkpoint(path, device)
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
    step = int(meta["step"])
    if state:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if "rng.noise" in extra:
        gen.set_state(extra["rng.noise"].cpu())  # generator states are CPU byte tensors on any device
    else:
        gen.manual_seed(int(meta.get("run", {}).get("train", {}).get("seed", 0)) + 104729 * step)
    return step, float(meta.get("elapsed_s", 0.0)), bool(state)


def pack_snapshot(snapshot: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write `snapshot` as its averaged weights plus its progress metadata, a quarter of its size
    (an eighth with `half`: float16 weights, which resume as float32).

    For carrying a long run across machines in git or to a lent GPU: optimizer moments and RNG
    state are three quarters of a snapshot and are rebuilt on resume (see `_restore`). Float16
    rounds each weight by under 0.05 %, once per trip: far below what a step of training moves.
    """
    meta = read_metadata(snapshot)
    model, _ = load_checkpoint(snapshot)
    extra = load_extra_tensors(snapshot)
    shadow = {k[4:]: v for k, v in extra.items() if k.startswith("ema.")}
    if shadow:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in shadow.items()})
    keep = {k: v for k, v in meta.items() if k not in ("model", "format", "code_version", "param_groups")}
    return save_checkpoint(out, model.half() if half else model, **keep, packed_from=Path(snapshot).name)


def _trim_metrics(run_dir: Path, step: int) -> None:
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


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): there bf16 autocast made a
    training step of the v2 model 1.95x faster (BENCHMARKS.md); elsewhere it is emulated, and slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def amp_mode(cfg: RunConfig, device: torch.device) -> str:
    """What `amp` resolves to on `device`: "auto" is bf16 on CUDA and on CPUs with native bf16."""
    if cfg.train.amp != "auto":
        return cfg.train.amp
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()) else "off"


def _autocast(cfg: RunConfig, device: torch.device):
    amp = amp_mode(cfg, device)
    if amp == "off":
        return contextlib.nullcontext, None
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"unknown amp mode {amp!r}: auto, bf16, fp16 or off")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; use bf16 or off on the CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None  # fp16 gradients underflow without it
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False, init: str | None = None,
          callback: Callback | None = None, progress: bool = True, changes: Iterable[str] = (),
          interrupt: Callable[[], int | None] | None = None) -> Path:
    """Train; return the path of the final checkpoint (run_dir/model.safetensors).

    resume: continue run_dir's snapshot with its own config, except for the fields named in
    `changes` (e.g. "train.steps"), taken from `cfg` where resume.RESUMABLE allows, else an error.
    interrupt: asked after every step; a signal number stops the run with a snapshot and raises
    TrainingInterrupted (no final model: the run is not done).
    """
    run_dir = Path(run_dir)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        device = (torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}") if torch.cuda.is_available()
                  else torch.device("cpu"))
    else:
        rank, world, device = 0, 1, resolve_device(cfg.train.device)
    main_rank = rank == 0
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)

    init_meta = None
    if resume and init:
        raise ValueError("--init starts a new run from a model, --resume continues the run folder's own: give one")
    if resume:  # the run folder's own config wins: resuming must not change the experiment
        cfg = resumed_config(run_dir, cfg, changes)
    elif init:  # fine-tuning keeps the starting model's architecture
        init_model, init_meta = load_checkpoint(init)
        cfg = replace(cfg, model=init_model.cfg, data=replace(cfg.data, channels=init_model.cfg.channels))
    if not resume:  # presets expanded: a name like "camera" may mean another chain in a later version
        cfg = replace(cfg, noise=parse_noise_spec(cfg.noise.spec, cfg.noise.quantize_prob))
    if cfg.model.channels != cfg.data.channels:
        raise ValueError(f"model has {cfg.model.channels} channels but data has {cfg.data.channels}")
    data = build_data(cfg, device)  # validates every input before anything is written
    steps = total_steps(cfg, data.items, world)

    model = build_model(cfg.model)
    if init and not resume:
        model.load_state_dict(init_model.state_dict())
    model = model.to(device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    opt = make_optimizer(model.parameters(), cfg.train)
    ema = EMA(model, cfg.train.ema) if cfg.train.ema > 0 else None
    gen = torch.Generator(device=device).manual_seed(cfg.train.seed + 7919 * rank)
    autocast, scaler = _autocast(cfg, device)

    snapshot = run_dir / "last.safetensors"
    step, elapsed_before = 0, 0.0  # training time spent by earlier legs of a resumed run
    had_opt = True
    if resume:
        if not snapshot.exists():
            raise FileNotFoundError(f"nothing to resume: {snapshot} does not exist")
        step, elapsed_before, had_opt = _restore(snapshot, model, opt, ema, gen, device)
        check_progress(cfg, step, steps, elapsed_before)
    if main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.part"):  # temp files of a killed write
            stale.unlink()
        if resume:
            _trim_metrics(run_dir, step)
        if not resume or cfg != load_run_config(run_dir):
            _write_config(run_dir, cfg, data.validation)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model
    eval_model = copy.deepcopy(model).eval() if ema else model

    loader = make_loader(data.dataset, cfg.data, step * cfg.data.batch_size,
                         max(0, steps - step) * cfg.data.batch_size, rank, world)
    meta = {"run": to_dict(cfg), "parameters": count_parameters(model), "amp": amp_mode(cfg, device),
            "total_steps": steps if cfg.train.time_budget_s <= 0 else None}  # a time budget knows no step count
    if init_meta is not None:
        meta["init"] = {"path": str(init), "metrics": init_meta.get("metrics")}
    log = MetricsLog(run_dir if main_rank else None, cfg.train.tensorboard and main_rank, callback)
    budget = cfg.train.time_budget_s
    bar = Progress(steps, step, progress and main_rank)
    pixels_per_step = cfg.data.batch_size * world * cfg.data.crop**2
    # Legs of one run may differ in batch or crop (a GPU leg trains larger batches): count what
    # each leg saw, on top of what the snapshot says was seen before it.
    pixels_before = int(read_metadata(snapshot).get("pixels_seen", step * pixels_per_step)) if resume else 0
    best = -math.inf
    if main_rank and (run_dir / "best.safetensors").exists() and resume:
        best = read_metadata(run_dir / "best.safetensors").get("metrics", {}).get("val_psnr", best)
    if cfg.train.budget_clock not in ("wall", "cpu"):
        raise ValueError(f"unknown budget clock {cfg.train.budget_clock!r}: wall or cpu")
    clock = time.process_time if cfg.train.budget_clock == "cpu" else time.time
    start, t_log, step0 = clock(), time.time(), step
    imgs_since, stop, out_of_time, signalled = 0, False, False, None

    def elapsed() -> float:
        return elapsed_before + clock() - start

    def lr_now(s: int) -> float:
        lr = lr_at(s, cfg.train, schedule_total(s, elapsed(), cfg.train, steps))
        if not had_opt:  # fresh Adam moments after a packed snapshot: ramp up again
            lr *= min(1.0, (s - step0 + 1) / max(1, cfg.train.warmup_steps))
        return lr

    def progress_meta() -> dict:  # what a run records of its length, in every checkpoint
        return {"step": step, "elapsed_s": round(elapsed(), 3), "pixels_seen": pixels_before + (step - step0) * pixels_per_step}

    def validate() -> dict:
        if ema:
            ema.copy_to(eval_model)
        model.eval()
        with torch.no_grad():  # float32: the scores are what the shipped model (run in fp32) would get
            out = eval_model(data.val_noisy.to(memory_format=memory_format)).float().clamp(0, 1)
        model.train()
        if main_rank and cfg.train.preview_count:
            n = cfg.train.preview_count
            save_preview(run_dir / "previews" / f"step_{step:07d}.png", data.val_noisy[:n], out[:n], data.val_clean[:n])
        return {"step": step, "val_psnr": psnr(out, data.val_clean).mean().item(),
                "val_ssim": ssim(out, data.val_clean).mean().item(), "time": elapsed()}

    def validate_and_keep_best() -> bool:
        """Validate, log, keep the best model; True if the callback asks to stop."""
        nonlocal best
        rec = validate()
        asked_stop = log.write(rec)
        if main_rank and rec["val_psnr"] > best:
            best = rec["val_psnr"]
            save_checkpoint(run_dir / "best.safetensors", eval_model, **meta, **progress_meta(),
                            metrics={"val_psnr": rec["val_psnr"], "val_ssim": rec["val_ssim"]})
        bar.message(f"step {step}: val PSNR {rec['val_psnr']:.2f} dB, SSIM {rec['val_ssim']:.4f}")
        return asked_stop

    if not resume:  # the start model's own score: every curve has a baseline (with --init, the one to beat)
        stop = validate_and_keep_best()

    model.train()
    for batch in loader:
        for g in opt.param_groups:
            g["lr"] = lr_now(step)
        if isinstance(batch, torch.Tensor):  # clean crops: noise is made here, on the device
            clean, noisy = make_pair(batch.to(device, non_blocking=True), cfg, gen)
        elif len(batch) == 2:  # paired folders
            noisy, clean = (t.to(device, non_blocking=True) for t in batch)
        else:  # pairs mixed with synthetic crops
            noisy, clean, paired = (t.to(device, non_blocking=True) for t in batch)
            synth_clean, synth_noisy = make_pair(clean, cfg, gen)
            pick = paired.view(-1, 1, 1, 1)
            noisy, clean = torch.where(pick, noisy, synth_noisy), torch.where(pick, clean, synth_clean)
        with autocast():
            out = net(noisy.contiguous(memory_format=memory_format))
        loss = training_loss(cfg.train.loss, cfg.train.ssim_weight, out, clean)
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if ema:
            ema.update(model, step)
        step += 1
        imgs_since += clean.shape[0] * world
        if budget > 0:  # every rank must agree, or DDP ranks would leave the loop apart
            flag = torch.tensor([float(elapsed() >= budget)], device=device)
            if ddp:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        last = step == steps or out_of_time

        if step % cfg.train.log_interval == 0 or last:
            loss_v = loss.detach().float()
            if ddp:
                dist.all_reduce(loss_v, op=dist.ReduceOp.AVG)
            now = time.time()
            rec = {"step": step, "loss": loss_v.item(), "lr": opt.param_groups[0]["lr"],
                   "images_per_s": imgs_since / max(now - t_log, 1e-9), "time": elapsed()}
            t_log, imgs_since = now, 0
            stop = log.write(rec) or stop
            if budget > 0:  # the bar's total: the steps the budget will reach at this pace
                bar.total = schedule_total(step, elapsed(), cfg.train, steps)
            bar.update(step, rec)
        if step % cfg.train.val_interval == 0 or last:
            stop = validate_and_keep_best() or stop
        signalled = signalled or (interrupt() if interrupt else None)
        stop = stop or bool(signalled)
        if ddp:  # every rank must leave the loop together, or the others hang in all_reduce
            flag = torch.tensor([float(stop)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if main_rank and (step % cfg.train.snapshot_interval == 0 or last or stop):
            save_checkpoint(snapshot, model, _snapshot_tensors(opt, ema, gen), **meta, **progress_meta(),
                            param_groups=opt.state_dict()["param_groups"])
        if stop:
            if not signalled:
                bar.message(f"stopped at step {step} on request")
            break
        if out_of_time:
            bar.message(f"time budget of {budget / 60:.1f} min spent at step {step}")
            break

    final = run_dir / "model.safetensors"
    if main_rank and not signalled:
        if ema:
            ema.copy_to(eval_model)
        save_checkpoint(final, eval_model, **meta, **progress_meta(), wall_time_s=elapsed(),
                        metrics={"val_psnr_best": best}, device=str(device), world_size=world)
    log.close()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    if signalled:
        raise TrainingInterrupted(snapshot, step, signalled)
    return final


def _write_config(run_dir: Path, cfg: RunConfig, validation: dict) -> None:
    """config.json: the resolved RunConfig, and what validation is made of (`from_dict` skips it)."""
    text = json.dumps({**to_dict(cfg), "validation": validation}, indent=2, sort_keys=True)
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(text))


def load_run_config(run_dir: str | Path) -> RunConfig:
    return from_dict(RunConfig, json.loads((Path(run_dir) / "config.json").read_text()))
