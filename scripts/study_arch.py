"""Architecture study: each candidate trained for the same wall time, side by side, then scored.

    python scripts/study_arch.py --datasets ../shared/datasets --budget 40m --out runs/study
    python scripts/study_arch.py --datasets ../shared/datasets --out runs/study --report-only --write BENCHMARKS.md

Every candidate gets the same recipe (train_default's colour data and blind noise mix, same
seed, crop and batch, channels-last), one CPU thread and the same `--time-budget`, and all of
them run at once, so that whatever else the machine does slows each the same. Each is then
scored under the benchmark protocol (denoiser.bench.evaluate) on Set12 at sigma 15/25/50 and on the
"camera" chain, with its parameters, MACs per pixel and ONNX Runtime milliseconds per
megapixel (a 1024x1024 image, all candidates timed in this one process). Set12 is never
trained on.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from denoiser.core.config import ModelConfig, RunConfig, parse_duration  # noqa: E402
from denoiser.core.nets import arch_config  # noqa: E402

# name -> network; sizes chosen for roughly the shipped model's inference cost (82 k MAC/px)
CANDIDATES: dict[str, ModelConfig] = {
    "unet": arch_config("unet", width=24, levels=3, blocks_per_level=2),  # the shipped v1 models
    "resunet": arch_config("resunet", width=32, levels=3, blocks_per_level=2, unshuffle=2),
    "s2dcnn": arch_config("s2dcnn", width=64, levels=12, unshuffle=2),
}
# Peak learning rate per candidate: the recipe's 1e-3, but a plain stack without batch norm
# barely moves at that rate (150-step probe, sigma 25: 20.1 dB at 1e-3, 21.8 dB at 3e-4).
LR = {"s2dcnn": 3e-4}
SIGMAS = (15, 25, 50)
SECTION = "## Architecture study"


def study_config(model: ModelConfig, datasets: Path, budget_s: float) -> RunConfig:
    from train_default import BLIND_MIX, COLOR_BASE

    base = COLOR_BASE
    return replace(base, noise=replace(base.noise, spec=BLIND_MIX), model=model,
                   data=replace(base.data, clean_dirs=(str(datasets / "CBSD432"),), crop=96, batch_size=12),
                   train=replace(base.train, time_budget_s=budget_s, threads=1, channels_last=True, seed=0,
                                 device="cpu", lr=LR.get(model.arch, base.train.lr)))


def _train_one(name: str, cfg: RunConfig, run: Path, resume: bool) -> None:
    os.nice(5)
    from denoiser.train.trainer import train

    with open(run.parent / f"{name}.log", "a") as log:
        sys.stderr = log
        train(cfg, run, resume=resume, progress=True)


def train_all(names: list[str], datasets: Path, budget_s: float, out: Path, resume: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name in names:
        cfg = study_config(CANDIDATES[name], datasets, budget_s)
        p = mp.get_context("spawn").Process(target=_train_one, args=(name, cfg, out / name, resume))
        p.start()
        procs.append((name, p))
    for name, p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"{name}: training failed (exit {p.exitcode}); see {out / name}.log")


def ms_per_mp(dn) -> float:
    """Milliseconds per megapixel of a loaded Denoiser on a 1024x1024 image (after a warm-up run)."""
    import numpy as np

    img = np.random.default_rng(0).random((1024, 1024, 3), dtype=np.float32)
    dn.denoise_array(img)  # warm-up: session, arena
    t = time.perf_counter()
    for _ in range(2):
        dn.denoise_array(img)
    return (time.perf_counter() - t) / 2 * 1000 / (1024 * 1024 / 1e6)


def report(names: list[str], datasets: Path, out: Path) -> str:
    from denoiser.bench.evaluate import evaluate, evaluate_pairs
    from denoiser.core.checkpoint import load_model
    from denoiser.core.nets import count_parameters, macs_per_pixel
    from denoiser.run.inference import Denoiser

    rows = []
    for name in names:
        path = out / name / "model.safetensors"
        model, meta = load_model(path)
        dn = Denoiser.load(path, backend="onnxruntime")
        set12 = [evaluate(dn, datasets / "Set12", s)["psnr"] for s in SIGMAS]
        camera = evaluate(dn, datasets / "Set12", 0.0, noise="camera")["psnr"]
        sidd = datasets / "SIDD12"
        real = evaluate_pairs(dn, sidd / "noisy", sidd / "clean")["psnr"] if sidd.is_dir() else float("nan")
        rows.append((name, model.cfg, set12, camera, real, count_parameters(model), macs_per_pixel(model),
                     ms_per_mp(dn), meta))
        print(name, set12, camera, real, file=sys.stderr, flush=True)
    lines = [SECTION, "",
             "Colour models trained from scratch for the same wall time, all at once, one thread each, same data "
             "(CBSD432), noise mix, seed, crop 96 and batch 12, peak lr 1e-3 (s2dcnn 3e-4) (`scripts/study_arch.py`). Set12 PSNR (dB) under "
             "the benchmark protocol; camera: the `camera` chain on Set12; SIDD12: the 12 real smartphone pairs "
             "(development only, never trained on); ms/MP: ONNX Runtime FP32 on a 1024x1024 "
             "image, 2 threads, same process for every row.", "",
             "| arch | config | Set12 σ15 | σ25 | σ50 | camera | SIDD12 | params | MAC/px | ms/MP | steps | Mpx seen "
             "| train min |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, cfg, s12, cam, real, params, macs, ms, meta in rows:
        size = f"w{cfg.width} l{cfg.levels} b{cfg.blocks_per_level} s{cfg.unshuffle}"
        lines.append(f"| {name} | {size} | {s12[0]:.2f} | {s12[1]:.2f} | {s12[2]:.2f} | {cam:.2f} | {real:.2f} | "
                     f"{params / 1e6:.2f} M | {macs / 1e3:.0f} k | {ms:.0f} | {meta.step} | "
                     f"{meta.pixels_seen / 1e6:.0f} | {meta.elapsed_s / 60:.1f} |")
    return "\n".join(lines) + "\n"


def write_section(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else ""
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    doc.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="../shared/datasets", help="folder holding CBSD432/ and Set12/")
    ap.add_argument("--budget", default="30m", help="training wall time per candidate (e.g. 30m)")
    ap.add_argument("--arch", nargs="*", default=list(CANDIDATES), help=f"candidates (of {', '.join(CANDIDATES)})")
    ap.add_argument("--out", default="runs/study", help="folder for the run folders")
    ap.add_argument("--resume", action="store_true", help="continue the runs' snapshots")
    ap.add_argument("--report-only", action="store_true", help="score existing runs, train nothing")
    ap.add_argument("--write", metavar="MD", help="replace the study section of this Markdown file")
    args = ap.parse_args()
    datasets, out = Path(args.datasets), Path(args.out)
    unknown = [a for a in args.arch if a not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    for sub in ("CBSD432", "Set12"):
        if not (datasets / sub).is_dir():
            raise SystemExit(f"{datasets / sub} not found: pass --datasets pointing at the folder that holds it")
    if not args.report_only:
        train_all(args.arch, datasets, parse_duration(args.budget), out, args.resume)
    section = report(args.arch, datasets, out)
    print(section)
    if args.write:
        write_section(Path(args.write), section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
