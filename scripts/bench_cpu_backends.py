"""PyTorch vs ONNX Runtime on the CPU for one model at one image size: which should `auto` pick?

    python scripts/bench_cpu_backends.py                    # default model size, 1000x1000
    python scripts/bench_cpu_backends.py --repeat 5 --size 2000x1500

Both run the same weights (the shipped default model if present, else a random-weight U-Net
of its size, width 24 and 3 levels: speed does not depend on the weights) through `Denoiser`
with one whole-image call, alternating backends call by call so that a shared, drifting CPU
load hits both alike. Reports the median seconds and MP/s per backend and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_memory import model_path  # noqa: E402

from denoiser.core.config import parse_wh  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--size", type=parse_wh, default=(1000, 1000), help="WIDTHxHEIGHT")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import numpy as np
    import torch

    from denoiser.run.inference import Denoiser

    w, h = args.size
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        model = model_path(args.model, Path(tmp))
        dns = {name: Denoiser.load(model, backend=name, memory_mb=4096) for name in ("torch", "onnxruntime")}
        img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
        times: dict[str, list[float]] = {name: [] for name in dns}
        outs = {name: dn.denoise_array(img) for name, dn in dns.items()}  # warm-up, and the agreement check
        for _ in range(args.repeat):
            for name, dn in dns.items():
                t0 = time.perf_counter()
                dn.denoise_array(img)
                times[name].append(time.perf_counter() - t0)
    mp = w * h / 1e6
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"model: {Path(model).name}, {w}x{h}, torch threads {torch.get_num_threads()}, median of {args.repeat}")
    print("| backend | median s | MP/s | all runs (s) |")
    print("|---|---|---|---|")
    for name, dn in dns.items():
        print(f"| {dn.backend.describe()} | {med[name]:.2f} | {mp / med[name]:.3f} | "
              f"{', '.join(f'{t:.2f}' for t in times[name])} |")
    print(f"ONNX Runtime / PyTorch speed: {med['torch'] / med['onnxruntime']:.2f}x; "
          f"max abs difference {np.abs(outs['torch'] - outs['onnxruntime']).max():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
