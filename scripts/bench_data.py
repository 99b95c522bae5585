"""Data throughput: clean crops per second from the loader, noise synthesis per second, and both.

    python scripts/bench_data.py --folder ../shared/datasets/CBSD432 --workers 0 1 2

For each source (a folder of images, held in memory as training holds them, and the procedural
dead-leaves source) and each number of loader workers, it times the DataLoader that training
uses (CleanCrops + IndexStream, batches of --batch crops of --crop px) and then the same loader
with noise synthesized in the main process, as the trainer does it on its device. Separately it
times noise synthesis alone, per spec, on --device. Prints Markdown tables; short on purpose.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.data import DataLoader

from denoiser.core.config import NoiseConfig
from denoiser.core.data import CleanCrops, CleanImages, IndexStream, load_clean_images
from denoiser.core.noise.ops import synthesize


def time_loader(dataset, batch: int, batches: int, workers: int, spec: str | None, device: torch.device) -> float:
    """Pairs (or clean crops, without a spec) per second, after one warm-up batch."""
    loader = DataLoader(dataset, batch_size=batch, sampler=IndexStream(0, batch * (batches + 1)),
                        num_workers=workers, drop_last=True)
    gen = torch.Generator(device=device).manual_seed(0)
    cfg = NoiseConfig(spec=spec) if spec else None
    it = iter(loader)
    next(it)  # worker start-up is paid once per run, not per batch
    start = time.perf_counter()
    n = 0
    for clean in it:
        clean = clean.to(device)
        if cfg:
            synthesize(clean, cfg, gen)
        n += clean.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def time_noise(spec: str, batch: int, crop: int, channels: int, repeats: int, device: torch.device) -> float:
    clean = torch.rand(batch, channels, crop, crop, device=device)
    cfg, gen = NoiseConfig(spec=spec), torch.Generator(device=device).manual_seed(0)
    synthesize(clean, cfg, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        synthesize(clean, cfg, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default="../shared/datasets/CBSD432", help="a folder of clean images")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--loader-spec", default="camera", help="noise made on the device in the end-to-end rows")
    ap.add_argument("--specs", nargs="+", default=["gaussian:0-55", "poisson-gaussian", "correlated", "speckle",
                                                      "salt-pepper", "jpeg:30-95", "camera", "gaussian:0-55|camera"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in the main process (2 threads on a busy 2-core machine ran 7x slower)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, device {device}, load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    images = load_clean_images((args.folder,), args.channels, args.crop)
    print(f"loaded {len(images.images)} images from {args.folder} in {time.perf_counter() - t:.1f} s "
          f"({images.skipped_small} too small, {images.skipped_unreadable} unreadable)\n")
    sources = {"folder": CleanCrops(images, args.crop, args.channels, 0.0, seed=0),
               "procedural": CleanCrops(CleanImages([], []), args.crop, args.channels, 1.0, seed=0)}

    print(f"| source | workers | clean crops/s | pairs/s with `{args.loader_spec}` noise on {device} |")
    print("|---|---:|---:|---:|")
    for name, ds in sources.items():
        for w in args.workers:
            clean = time_loader(ds, args.batch, args.batches, w, None, device)
            pairs = time_loader(ds, args.batch, args.batches, w, args.loader_spec, device)
            print(f"| {name} | {w} | {clean:.0f} | {pairs:.0f} |", flush=True)

    print(f"\n| noise spec | pairs/s on {device} ({args.batch} x {args.channels} x {args.crop} x {args.crop}) |")
    print("|---|---:|")
    for spec in args.specs:
        rate = time_noise(spec, args.batch, args.crop, args.channels, 10, device)
        print(f"| `{spec.replace('|', chr(92) + '|')}` | {rate:.0f} |", flush=True)  # '|' would end the cell


if __name__ == "__main__":
    main()
