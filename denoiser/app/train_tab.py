"""What the app's Train tab does, in the spirit of DIGITS: build a run config from the form,
start a `TrainingJob`, report its records as curves and its latest preview, stop it, and hand
the finished model to the Denoise tab or export it to ONNX.

One training run at a time per server: training takes every core and a good share of memory,
and a second run would starve the first and the people denoising. A session remembers its run
folder; the job itself lives in this module's registry, and a page opened (or reloaded) while
a run is going follows that run.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from denoiser.app.denoise_tab import MAX_PIXELS
from denoiser.app.messages import user_error
from denoiser.app.train_data import resolve_source
from denoiser.app.training_job import TrainingJob
from denoiser.core.checkpoint import read_checkpoint_meta
from denoiser.core.config import (
    FINETUNE_LR,
    DataConfig,
    ModelConfig,
    NoiseConfig,
    RunConfig,
    TrainConfig,
)
from denoiser.core.data import check_image_sizes
from denoiser.core.imageio import DEFAULT_MAX_PIXELS
from denoiser.train.memory import check_training_memory
from denoiser.train.monitor import read_metrics

NEW_MODEL = ""  # the "start from" choice that means: a fresh, randomly initialised model
_jobs: dict[str, TrainingJob] = {}
_stopping: set[str] = set()  # run folders asked to stop, to say "stopping" until they have
_jobs_lock = threading.Lock()
# What one run from the page may take: uploaded images at most MAX_PIXELS each (as the Denoise
# tab) and all of them together DATA_MEMORY decoded, else refused; a server folder's images may
# be larger (imageio's default limit) and past DATA_MEMORY are read from disk as training goes.
# The model, optimizer and activations: RUN_MEMORY, by train_memory's estimate.
DATA_MEMORY = 2 << 30
RUN_MEMORY = 4 << 30


@dataclass(frozen=True)
class TrainForm:
    """The train tab's fields, as the page sends them."""

    source: str = "procedural"
    zip_path: str | None = None
    folder: str = ""
    noise: str = NoiseConfig.spec
    mix_procedural: bool = True
    init: str = NEW_MODEL
    steps: int = TrainConfig.steps
    epochs: int = TrainConfig.epochs
    batch_size: int = DataConfig.batch_size
    crop: int = DataConfig.crop
    lr: float | None = None  # None or 0: TrainConfig.lr, or FINETUNE_LR when fine-tuning (init)
    schedule: str = TrainConfig.schedule
    solver: str = TrainConfig.solver
    seed: int = TrainConfig.seed
    snapshot_interval: int = TrainConfig.snapshot_interval
    val_interval: int = TrainConfig.val_interval
    log_interval: int = TrainConfig.log_interval
    warmup: int = TrainConfig.warmup_steps
    arch: str = ModelConfig.arch
    width: int = 0  # 0: the architecture's own default (nets.ARCH_DEFAULTS)
    levels: int = 0
    val_count: int = DataConfig.val_count


def _positive(name: str, value, minimum: int = 1) -> int:
    if value is None or int(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return int(value)


def build_run_config(form: TrainForm, data: DataConfig) -> RunConfig:
    """The RunConfig the form describes (fine-tuning keeps the start model's architecture)."""
    from denoiser.core.noise.ops import parse_noise_spec

    if int(form.epochs or 0) <= 0:
        _positive("steps", form.steps)
    lr = float(form.lr) if form.lr else FINETUNE_LR if form.init else TrainConfig.lr
    tr = TrainConfig(steps=int(form.steps or 0), epochs=int(form.epochs or 0), solver=form.solver, lr=lr,
                     schedule=form.schedule, seed=int(form.seed or 0),
                     snapshot_interval=_positive("snapshot interval", form.snapshot_interval),
                     val_interval=_positive("validation interval", form.val_interval),
                     log_interval=_positive("log interval", form.log_interval),
                     warmup_steps=_positive("warm-up", form.warmup, 0))
    if tr.lr <= 0:
        raise ValueError("learning rate must be > 0 (or empty: the default)")
    from denoiser.core.nets import arch_config

    size = {"width": _positive("width", form.width, 4) if form.width else None,
            "levels": _positive("levels", form.levels) if form.levels else None}
    model = arch_config(form.arch or ModelConfig.arch, channels=data.channels, **size)
    return RunConfig(noise=parse_noise_spec(form.noise), data=data, model=model, train=tr)


def new_run_dir(runs_dir: Path) -> Path:
    base = runs_dir / time.strftime("ui-%Y%m%d-%H%M%S")
    run, k = base, 2
    while run.exists():
        run, k = base.with_name(f"{base.name}-{k}"), k + 1
    return run


def data_limits(source: str) -> dict:
    """DataConfig's limits for a page run from `source` (see DATA_MEMORY)."""
    upload = source != "folder"
    return {"max_image_pixels": MAX_PIXELS if upload else DEFAULT_MAX_PIXELS, "memory_budget": DATA_MEMORY,
            "read_past_budget": not upload}


def _as_trained(cfg: RunConfig, init: str | None) -> RunConfig:
    """The config training will run: fine-tuning keeps the start model's architecture."""
    if not init:
        return cfg
    model = read_checkpoint_meta(init).model_config(init)
    return replace(cfg, model=model, data=replace(cfg.data, channels=model.channels))


def start(form: TrainForm, runs_dir: str | Path, data_root: str | Path | None) -> tuple[str, str]:
    """Start a run; return (run folder, a line for the page). ValueError for a bad form."""
    with _jobs_lock:
        busy = [d for d, j in _jobs.items() if j.running]
        if busy:
            raise ValueError(f"a training run is already going ({Path(busy[0]).name}): stop it first, "
                             "this server trains one model at a time")
        sizes = {"batch_size": _positive("batch size", form.batch_size), "crop": _positive("crop", form.crop, 8),
                 "val_count": _positive("validation crops", form.val_count), **data_limits(form.source)}
        # the whole form is checked, and its memory estimated, before any upload is unpacked
        check_training_memory(_as_trained(build_run_config(form, DataConfig(**sizes)), form.init), RUN_MEMORY)
        run_dir = new_run_dir(Path(runs_dir))
        try:
            src = resolve_source(form.source, form.zip_path, form.folder, data_root, run_dir / "data",
                                 form.mix_procedural)
            data = DataConfig(clean_dirs=src.clean_dirs, pairs=src.pairs, procedural=src.procedural, **sizes)
            cfg = build_run_config(form, data)
            check_image_sizes(data)  # headers only: nothing is decoded before a refusal
            job = TrainingJob(cfg, run_dir, init=form.init or None).start()
        except BaseException:  # a run that did not start keeps no folder (nor its unpacked upload)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        _jobs[str(run_dir)] = job
    start_from = Path(form.init).name if form.init else "a new model"
    return str(run_dir), f"Started **{run_dir.name}** from {start_from} on {src.description}."


def running_run() -> str | None:
    """The run folder of the run going on this server, if any (a reloaded page follows it)."""
    with _jobs_lock:
        return next((d for d, j in _jobs.items() if j.running), None)


def job_for(run_dir: str | None) -> TrainingJob | None:
    return _jobs.get(str(run_dir)) if run_dir else None


def stop(run_dir: str | None) -> str:
    job = job_for(run_dir)
    if job is None or not job.running:
        return "No run is going in this session."
    job.stop()
    _stopping.add(str(run_dir))
    return f"Stopping **{Path(run_dir).name}** after this step; it saves a snapshot and its model."


@dataclass
class Progress:
    status: str
    loss: list[dict]
    psnr: list[dict]
    preview: str | None
    running: bool
    model: str | None  # the final checkpoint, once written


def progress(run_dir: str | None) -> Progress:
    """Where the run stands: records so far (live from the job, else from metrics.jsonl)."""
    if not run_dir:
        return Progress("No run yet: choose data and options, then **Start**.", [], [], None, False, None)
    job, run = job_for(run_dir), Path(run_dir)
    records = list(job.records) if job else read_metrics(run)
    loss = [{"step": r["step"], "loss": r["loss"]} for r in records if "loss" in r]
    psnr = [{"step": r["step"], "val PSNR (dB)": r["val_psnr"]} for r in records if "val_psnr" in r]
    previews = sorted((run / "previews").glob("step_*.png")) if (run / "previews").is_dir() else []
    running = bool(job and job.running)
    model = run / "model.safetensors"
    parts = [f"**{run.name}**"]
    if job and job.cfg.train.epochs <= 0:
        parts.append(f"step {loss[-1]['step'] if loss else 0} / {job.cfg.train.steps}")
    elif loss:
        parts.append(f"step {loss[-1]['step']}")
    if loss:
        parts.append(f"loss {loss[-1]['loss']:.4f}")
    if psnr:
        parts.append(f"val PSNR {psnr[-1]['val PSNR (dB)']:.2f} dB (best {max(p['val PSNR (dB)'] for p in psnr):.2f})")
    why = _procedural_validation(run)
    if why:
        parts.append(f"validation on procedural images: {why}")
    if job and job.error:
        state = f"failed: {job.error}"
    elif running:
        state = "stopping" if str(run_dir) in _stopping else "training"
    else:
        state = "finished" if model.exists() else "not running"
    return Progress(" · ".join(parts) + f" — {state}", loss, psnr,
                    str(previews[-1]) if previews else None, running,
                    str(model) if model.exists() and not running else None)


def _procedural_validation(run: Path) -> str | None:
    """Why the run validates on procedural images (too few of the user's own), if it does."""
    try:
        return (json.loads((run / "config.json").read_text()).get("validation") or {}).get("procedural_fallback")
    except (OSError, ValueError):  # not written yet
        return None


def finished_model(run_dir: str | None) -> str:
    p = progress(run_dir)
    if p.model is None:
        raise ValueError("the run has not written its final model yet: wait for it to finish, or Stop it")
    return p.model


def export(run_dir: str | None) -> tuple[str, str]:
    """Export the run's final model to ONNX beside it; return (path, a line for the page)."""
    from denoiser.deploy.export import export_checkpoint

    model = Path(finished_model(run_dir))
    out = model.with_suffix(".onnx")
    side = export_checkpoint(model, out)
    return str(out), (f"Exported **{out.name}** (checked against PyTorch: max abs diff "
                      f"{side['check']['max_abs_diff']:.1e}); it is in the model picker too.")


def to_gr_error(fn):
    """Run a handler; what a person can act on (a bad form, a file problem, a failed export
    check) becomes a message on the page instead of a traceback."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError, RuntimeError) as e:
            raise user_error(str(e)) from None
    return wrapped
