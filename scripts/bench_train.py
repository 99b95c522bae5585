"""Training throughput (images/s) of the default model's config, per precision and layout.

    python scripts/bench_train.py                 # CPU here; on a GPU machine add --device cuda
    python scripts/bench_train.py --device cuda --compile
    python scripts/bench_train.py --cpu-study --arch resunet   # the CPU recipe choices, one table

--cpu-study measures, for one architecture of scripts/study_arch.py: contiguous vs
channels-last vs torch.compile, one process with 2 threads vs two processes with 1 thread
each (summed), and crop/batch shapes of about the same pixels per step; pixels/s is the
column to compare across shapes.

Runs the package's own training step (synthetic noise on the device, loss, backward, AdamW,
grad clipping) on procedural crops, the config of the color-base recipe in scripts/train_default.py, and prints a
Markdown table. Data loading is measured separately so one can see whether it keeps up.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import train_default  # the shipped model's config: one source of truth

from denoiser.core.data import CleanCrops, CleanImages
from denoiser.core.metrics import training_loss
from denoiser.core.nets import build_model
from denoiser.core.noise.ops import synthesize


def bench_step(device: str, amp: str, channels_last: bool, compile_: bool, steps: int, warmup: int,
               cfg=None, threads: int = 0) -> float:
    cfg = cfg or train_default.COLOR_BASE
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    data = CleanCrops(CleanImages([], []), cfg.data.crop, cfg.data.channels, 1.0, seed=0)
    clean = torch.stack([data[i] for i in range(cfg.data.batch_size)]).to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step() -> None:
        noisy = synthesize(clean, cfg.noise, gen).contiguous(memory_format=fmt)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            out = net(noisy)
        loss = training_loss(cfg.train.loss, 0.0, out, clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * cfg.data.batch_size / (time.perf_counter() - t)


def bench_data(n: int) -> float:
    cfg = train_default.COLOR_BASE
    data = CleanCrops(CleanImages([], []), cfg.data.crop, cfg.data.channels, 1.0, seed=0)
    t = time.perf_counter()
    for i in range(n):
        data[i]
    return n / (time.perf_counter() - t)


def _one_process(args: tuple) -> float:
    return bench_step(*args)


def cpu_study(arch: str, steps: int, warmup: int) -> None:
    """The table behind the CPU training recipe's defaults (see the module docstring)."""
    import multiprocessing as mp
    from dataclasses import replace

    from study_arch import CANDIDATES

    from denoiser.train.trainer import cpu_has_fast_bf16

    base = replace(train_default.COLOR_BASE, model=CANDIDATES[arch])
    print(f"{arch}: {CANDIDATES[arch]}; torch {torch.__version__}; {platform.processor() or 'CPU'}")
    print("| layout | processes x threads | batch x crop | images/s | Mpx/s | vs first row |")
    print("|---|---|---|---:|---:|---:|")
    first = None

    def row(label: str, procs: int, threads: int, batch: int, crop: int, cl: bool, comp: bool,
            amp: str = "off") -> None:
        nonlocal first
        cfg = replace(base, data=replace(base.data, batch_size=batch, crop=crop))
        job = ("cpu", amp, cl, comp, steps, warmup, cfg, threads)
        if procs == 1:
            ips = bench_step(*job)
        else:
            with mp.get_context("spawn").Pool(procs) as pool:
                ips = sum(pool.map(_one_process, [job] * procs))
        mpx = ips * crop * crop / 1e6
        first = first or mpx
        print(f"| {label} | {procs} x {threads} | {batch} x {crop}² | {ips:.1f} | {mpx:.3f} | {mpx / first:.2f}x |",
              flush=True)

    row("contiguous", 1, 1, 12, 96, False, False)
    row("channels-last", 1, 1, 12, 96, True, False)
    row("channels-last + torch.compile", 1, 1, 12, 96, True, True)
    row("channels-last", 1, 2, 12, 96, True, False)
    row("channels-last", 2, 1, 12, 96, True, False)
    for batch, crop in ((27, 64), (7, 128), (3, 192)):
        row("channels-last", 1, 1, batch, crop, True, False)
    # bf16 autocast: fp32 master weights, convs in bf16; native on AVX512-BF16 / AMX CPUs only
    # (train.cpu_has_fast_bf16), where the trainer's amp "auto" picks it
    row(f"contiguous, bf16 autocast (native bf16: {cpu_has_fast_bf16()})", 1, 1, 7, 128, False, False, "bf16")
    row(f"contiguous, bf16 autocast (native bf16: {cpu_has_fast_bf16()})", 2, 1, 7, 128, False, False, "bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also try torch.compile")
    ap.add_argument("--cpu-study", action="store_true", help="the CPU recipe table (layouts, threads, shapes)")
    ap.add_argument("--arch", default="resunet", help="--cpu-study: which scripts/study_arch.py candidate")
    args = ap.parse_args()
    if args.cpu_study:
        cpu_study(args.arch, args.steps, args.warmup)
        return

    rows = [("fp32", "off", False, False), ("bf16 autocast", "bf16", False, False)]
    if args.device.startswith("cuda"):
        rows += [("bf16 + channels-last", "bf16", True, False)]
        if args.compile:
            rows += [("bf16 + channels-last + compile", "bf16", True, True)]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    cfg = train_default.COLOR_BASE
    print(f"device: {name}; torch {torch.__version__}; model width {cfg.model.width}, levels {cfg.model.levels}; "
          f"batch {cfg.data.batch_size} x {cfg.data.crop}x{cfg.data.crop}")
    print("| config | images/s | vs fp32 |\n|---|---|---|")
    base = None
    for label, amp, cl, comp in rows:
        ips = bench_step(args.device, amp, cl, comp, args.steps, args.warmup)
        base = base or ips
        print(f"| {label} | {ips:.1f} | {ips / base:.2f}x |", flush=True)
    crops = bench_data(200)
    print(f"\nprocedural data, one loader process: {crops:.0f} crops/s "
          f"({crops / cfg.data.batch_size:.1f} batches/s); add --workers to the trainer to scale it")


if __name__ == "__main__":
    main()
