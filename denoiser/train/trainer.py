"""One training loop, the same on one CPU, one GPU, or many under torchrun (DDP).

`train` sets a run up (placement, config, data, model, optimizer, snapshot) and hands the built
objects to a `Trainer`, which runs batches, validates, saves snapshots, and loops until the run
is done (the shape of pytorch/examples' torchrun Trainer).

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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from denoiser.core.atomic import atomic_write
from denoiser.core.checkpoint import load_model, read_checkpoint_meta, save_checkpoint
from denoiser.core.config import RunConfig, from_dict, to_dict
from denoiser.core.data import make_loader
from denoiser.core.metrics import psnr, ssim, training_loss
from denoiser.core.nets import build_model, count_parameters
from denoiser.core.noise.ops import parse_noise_spec, synthesize
from denoiser.train.interrupt import TrainingInterrupted
from denoiser.train.monitor import Callback, MetricsLog, Progress, save_preview
from denoiser.train.optim import EMA, lr_at, make_optimizer, schedule_total
from denoiser.train.placement import Placement, place_process
from denoiser.train.resume import check_progress, resumed_config
from denoiser.train.snapshot import restore, snapshot_tensors, trim_metrics
from denoiser.train.validation import VAL_SEED, TrainingData, build_data  # noqa: F401 (scripts import them from here)


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


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: `autocast()` opens its context; `scaler` is fp16's GradScaler."""

    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler | None = None


def mixed_precision(cfg: RunConfig, device: torch.device) -> Precision:
    amp = amp_mode(cfg, device)
    if amp == "off":
        return Precision(contextlib.nullcontext)
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"unknown amp mode {amp!r}: auto, bf16, fp16 or off")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; use bf16 or off on the CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None  # fp16 gradients underflow without it
    return Precision(lambda: torch.autocast(device.type, dtype=dtype), scaler)


@dataclass(frozen=True)
class Start:
    """Where this leg of a run begins: at nothing, or where its snapshot left off (--resume)."""

    step: int = 0
    elapsed_s: float = 0.0  # training time spent by earlier legs
    pixels_seen: int = 0  # what earlier legs saw, each at its own batch and crop
    had_opt: bool = True  # False after a packed snapshot: Adam's moments start afresh
    best: float = -math.inf  # validation PSNR of best.safetensors


class Trainer:
    """Runs one process's share of a run on objects built and passed in by `train`: a batch at a
    time, validating, keeping the best model and writing snapshots (rank 0 only) as it goes."""

    def __init__(self, cfg: RunConfig, run_dir: Path, place: Placement, model: torch.nn.Module,
                 opt: torch.optim.Optimizer, ema: EMA | None, gen: torch.Generator, precision: Precision,
                 data: TrainingData, loader: Iterable, steps: int, start: Start, meta: dict,
                 log: MetricsLog, bar: Progress):
        self.cfg, self.run_dir, self.place = cfg, run_dir, place
        self.model, self.opt, self.ema, self.gen, self.precision = model, opt, ema, gen, precision
        self.data, self.loader, self.steps, self.start = data, loader, steps, start
        self.meta, self.log, self.bar = meta, log, bar
        self.net = torch.nn.parallel.DistributedDataParallel(model) if place.ddp else model
        self.eval_model = copy.deepcopy(model).eval() if ema else model  # gets the EMA's weights
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.step, self.best = start.step, start.best
        self.pixels_per_step = cfg.data.batch_size * place.world * cfg.data.crop**2
        self.clock = time.process_time if cfg.train.budget_clock == "cpu" else time.time
        self.t_start, self.t_log, self.images_since_log = self.clock(), time.time(), 0

    def elapsed(self) -> float:
        return self.start.elapsed_s + self.clock() - self.t_start

    def _lr(self) -> float:
        cfg = self.cfg.train
        lr = lr_at(self.step, cfg, schedule_total(self.step, self.elapsed(), cfg, self.steps))
        if not self.start.had_opt:  # fresh Adam moments after a packed snapshot: ramp up again
            lr *= min(1.0, (self.step - self.start.step + 1) / max(1, cfg.warmup_steps))
        return lr

    def _progress_meta(self) -> dict:
        """What a run records of its length, in every checkpoint."""
        seen = self.start.pixels_seen + (self.step - self.start.step) * self.pixels_per_step
        return {"step": self.step, "elapsed_s": round(self.elapsed(), 3), "pixels_seen": seen}

    def _agree(self, flag: bool) -> bool:
        """`flag` on any rank: every rank must leave the loop together, or the others hang in all_reduce."""
        if not self.place.ddp:
            return flag
        t = torch.tensor([float(flag)], device=self.place.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _noisy_clean(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.place.device
        if isinstance(batch, torch.Tensor):  # clean crops: noise is made here, on the device
            clean, noisy = make_pair(batch.to(device, non_blocking=True), self.cfg, self.gen)
            return noisy, clean
        if len(batch) == 2:  # paired folders
            noisy, clean = (t.to(device, non_blocking=True) for t in batch)
            return noisy, clean
        # pairs mixed with synthetic crops
        noisy, clean, paired = (t.to(device, non_blocking=True) for t in batch)
        synth_clean, synth_noisy = make_pair(clean, self.cfg, self.gen)
        pick = paired.view(-1, 1, 1, 1)
        return torch.where(pick, noisy, synth_noisy), torch.where(pick, clean, synth_clean)

    def _run_batch(self, batch) -> torch.Tensor:
        """One optimizer step on `batch`; return its loss."""
        cfg, opt, scaler = self.cfg.train, self.opt, self.precision.scaler
        for g in opt.param_groups:
            g["lr"] = self._lr()
        noisy, clean = self._noisy_clean(batch)
        with self.precision.autocast():
            out = self.net(noisy.contiguous(memory_format=self.memory_format))
        loss = training_loss(cfg.loss, cfg.ssim_weight, out, clean)
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if self.ema:
            self.ema.update(self.model, self.step)
        self.step += 1
        self.images_since_log += clean.shape[0] * self.place.world
        return loss

    def _log_loss(self, loss: torch.Tensor) -> bool:
        """Record the loss, learning rate and pace; True if the callback asks to stop."""
        loss_v = loss.detach().float()
        if self.place.ddp:
            dist.all_reduce(loss_v, op=dist.ReduceOp.AVG)
        now = time.time()
        rec = {"step": self.step, "loss": loss_v.item(), "lr": self.opt.param_groups[0]["lr"],
               "images_per_s": self.images_since_log / max(now - self.t_log, 1e-9), "time": self.elapsed()}
        self.t_log, self.images_since_log = now, 0
        asked_stop = self.log.write(rec)
        if self.cfg.train.time_budget_s > 0:  # the bar's total: the steps the budget will reach at this pace
            self.bar.total = schedule_total(self.step, self.elapsed(), self.cfg.train, self.steps)
        self.bar.update(self.step, rec)
        return asked_stop

    def _validate(self) -> dict:
        data, n = self.data, self.cfg.train.preview_count
        if self.ema:
            self.ema.copy_to(self.eval_model)
        self.model.eval()
        with torch.no_grad():  # float32: the scores are what the shipped model (run in fp32) would get
            out = self.eval_model(data.val_noisy.to(memory_format=self.memory_format)).float().clamp(0, 1)
        self.model.train()
        if self.place.main and n:
            path = self.run_dir / "previews" / f"step_{self.step:07d}.png"
            save_preview(path, data.val_noisy[:n], out[:n], data.val_clean[:n])
        return {"step": self.step, "val_psnr": psnr(out, data.val_clean).mean().item(),
                "val_ssim": ssim(out, data.val_clean).mean().item(), "time": self.elapsed()}

    def _validate_and_keep_best(self) -> bool:
        """Validate, log, keep the best model; True if the callback asks to stop."""
        rec = self._validate()
        asked_stop = self.log.write(rec)
        if self.place.main and rec["val_psnr"] > self.best:
            self.best = rec["val_psnr"]
            save_checkpoint(self.run_dir / "best.safetensors", self.eval_model, **self.meta, **self._progress_meta(),
                            metrics={"val_psnr": rec["val_psnr"], "val_ssim": rec["val_ssim"]})
        self.bar.message(f"step {self.step}: val PSNR {rec['val_psnr']:.2f} dB, SSIM {rec['val_ssim']:.4f}")
        return asked_stop

    def _save_snapshot(self) -> None:
        save_checkpoint(self.run_dir / "last.safetensors", self.model, snapshot_tensors(self.opt, self.ema, self.gen),
                        **self.meta, **self._progress_meta(), param_groups=self.opt.state_dict()["param_groups"])

    def fit(self, baseline: bool, interrupt: Callable[[], int | None] | None = None) -> int | None:
        """Train until the step count or time budget is reached, the callback asks to stop, or
        `interrupt` returns a signal number (which is returned; None otherwise). `baseline`:
        validate the start model first, so every curve has one (with --init, the one to beat)."""
        cfg = self.cfg.train
        stop, signalled = (self._validate_and_keep_best() if baseline else False), None
        self.model.train()
        for batch in self.loader:
            loss = self._run_batch(batch)
            out_of_time = cfg.time_budget_s > 0 and self._agree(self.elapsed() >= cfg.time_budget_s)
            last = self.step == self.steps or out_of_time
            if self.step % cfg.log_interval == 0 or last:
                stop = self._log_loss(loss) or stop
            if self.step % cfg.val_interval == 0 or last:
                stop = self._validate_and_keep_best() or stop
            signalled = signalled or (interrupt() if interrupt else None)
            stop = self._agree(stop or bool(signalled))
            if self.place.main and (self.step % cfg.snapshot_interval == 0 or last or stop):
                self._save_snapshot()
            if stop:
                if not signalled:
                    self.bar.message(f"stopped at step {self.step} on request")
                break
            if out_of_time:
                self.bar.message(f"time budget of {cfg.time_budget_s / 60:.1f} min spent at step {self.step}")
                break
        return signalled

    def save_final(self, path: Path) -> Path:
        if self.ema:
            self.ema.copy_to(self.eval_model)
        return save_checkpoint(path, self.eval_model, **self.meta, **self._progress_meta(), wall_time_s=self.elapsed(),
                               metrics={"val_psnr_best": self.best}, device=str(self.place.device),
                               world_size=self.place.world)


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
    place = place_process(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    cfg, init_model, init_meta = _run_config(cfg, run_dir, resume, init, changes)
    data = build_data(cfg, place.device)  # validates every input before anything is written
    steps = total_steps(cfg, data.items, place.world)

    model = build_model(cfg.model)
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
    model = model.to(place.device)
    model = model.to(memory_format=torch.channels_last if cfg.train.channels_last else torch.contiguous_format)
    opt = make_optimizer(model.parameters(), cfg.train)
    ema = EMA(model, cfg.train.ema) if cfg.train.ema > 0 else None
    gen = torch.Generator(device=place.device).manual_seed(cfg.train.seed + 7919 * place.rank)
    precision = mixed_precision(cfg, place.device)
    start = _resume_from_snapshot(cfg, run_dir, place, model, opt, ema, gen, steps) if resume else Start()
    if place.main:
        _prepare_run_dir(run_dir, cfg, data.validation, resume, start.step)

    loader = make_loader(data.dataset, cfg.data, start.step * cfg.data.batch_size,
                         max(0, steps - start.step) * cfg.data.batch_size, place.rank, place.world)
    meta = {"run": to_dict(cfg), "parameters": count_parameters(model), "amp": amp_mode(cfg, place.device),
            "total_steps": steps if cfg.train.time_budget_s <= 0 else None}  # a time budget knows no step count
    if init_meta is not None:
        meta["init"] = {"path": str(init), "metrics": init_meta.metrics}
    log = MetricsLog(run_dir if place.main else None, cfg.train.tensorboard and place.main, callback)
    bar = Progress(steps, start.step, progress and place.main)
    trainer = Trainer(cfg, run_dir, place, model, opt, ema, gen, precision, data, loader, steps, start, meta, log, bar)
    signalled = trainer.fit(baseline=not resume, interrupt=interrupt)

    final = run_dir / "model.safetensors"
    if place.main and not signalled:
        trainer.save_final(final)
    log.close()
    if place.ddp:
        dist.barrier()
        dist.destroy_process_group()
    if signalled:
        raise TrainingInterrupted(run_dir / "last.safetensors", trainer.step, signalled)
    return final


def _run_config(cfg: RunConfig, run_dir: Path, resume: bool, init: str | None, changes: Iterable[str]):
    """The config the run trains with, and the --init model with its metadata (or None, None)."""
    init_model = init_meta = None
    if resume and init:
        raise ValueError("--init starts a new run from a model, --resume continues the run folder's own: give one")
    if resume:  # the run folder's own config wins: resuming must not change the experiment
        cfg = resumed_config(run_dir, cfg, changes)
    elif init:  # fine-tuning keeps the starting model's architecture
        init_model, init_meta = load_model(init)
        cfg = replace(cfg, model=init_model.cfg, data=replace(cfg.data, channels=init_model.cfg.channels))
    if not resume:  # presets expanded: a name like "camera" may mean another chain in a later version
        cfg = replace(cfg, noise=parse_noise_spec(cfg.noise.spec, cfg.noise.quantize_prob))
    if cfg.model.channels != cfg.data.channels:
        raise ValueError(f"model has {cfg.model.channels} channels but data has {cfg.data.channels}")
    if cfg.train.budget_clock not in ("wall", "cpu"):
        raise ValueError(f"unknown budget clock {cfg.train.budget_clock!r}: wall or cpu")
    return cfg, init_model, init_meta


def _resume_from_snapshot(cfg: RunConfig, run_dir: Path, place: Placement, model, opt, ema: EMA | None,
                          gen: torch.Generator, steps: int) -> Start:
    """Load run_dir's snapshot into the objects; where the run left off."""
    snapshot = run_dir / "last.safetensors"
    if not snapshot.exists():
        raise FileNotFoundError(f"nothing to resume: {snapshot} does not exist")
    step, elapsed_s, had_opt = restore(snapshot, model, opt, ema, gen, place.device)
    check_progress(cfg, step, steps, elapsed_s)
    # Legs of one run may differ in batch or crop (a GPU leg trains larger batches): count what
    # each leg saw, on top of what the snapshot says was seen before it.
    pixels_per_step = cfg.data.batch_size * place.world * cfg.data.crop**2
    seen = read_checkpoint_meta(snapshot).pixels_seen
    pixels = step * pixels_per_step if seen is None else seen
    best, best_path = -math.inf, run_dir / "best.safetensors"
    if place.main and best_path.exists():
        best = (read_checkpoint_meta(best_path).metrics or {}).get("val_psnr", best)
    return Start(step, elapsed_s, pixels, had_opt, best)


def _prepare_run_dir(run_dir: Path, cfg: RunConfig, validation: dict, resume: bool, step: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.part"):  # temp files of a killed write
        stale.unlink()
    if resume:
        trim_metrics(run_dir, step)
    if not resume or cfg != load_run_config(run_dir):
        _write_config(run_dir, cfg, validation)


def _write_config(run_dir: Path, cfg: RunConfig, validation: dict) -> None:
    """config.json: the resolved RunConfig, and what validation is made of (`from_dict` skips it)."""
    text = json.dumps({**to_dict(cfg), "validation": validation}, indent=2, sort_keys=True)
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(text))


def load_run_config(run_dir: str | Path) -> RunConfig:
    return from_dict(RunConfig, json.loads((Path(run_dir) / "config.json").read_text()))
