"""Where the time of one photo goes, end to end: decode, tiling, the backend, blending, encode.

    python scripts/profile_photo.py --size 4000x3000 --quality fast balanced

Writes a camera-like noisy JPEG (scripts/bench_memory.make_photo), then for each quality mode
loads the model (exports are made before the clock starts) and times, in one process:
  decode    read_image (JPEG -> float32 RGB)
  backend   the runner's calls (ONNX Runtime), summed over tiles
  tiling    cutting tiles and stacking them into batches, copying cores out (denoise_tiled
            minus the backend)
  finish    clipping to [0, 1] (and the strength blend, here 1: none)
  encode    write_image (JPEG, quality 95, atomic write)
plus the pixels the backend saw against the image's (the margins' overhead). The modes run in
turns, `--repeat` times; the table has the medians. The CLI's end-to-end wall time (a fresh
`denoiser denoise` process, as bench_memory.py runs it) is printed last for the same photo.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from denoiser.core.config import parse_wh  # noqa: E402


class TimedRunner:
    """The backend with a stopwatch and a pixel counter (what it was asked to compute)."""

    def __init__(self, backend):
        self.inner, self.seconds, self.pixels = backend, 0.0, 0
        self.name, self.precision = backend.name, backend.precision

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        y = self.inner(x)
        self.seconds += time.perf_counter() - t
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        return y

    def describe(self) -> str:
        return self.inner.describe()


def profile_once(dn, photo: Path, out: Path) -> dict:
    from denoiser.core.imageio import read_image, write_image
    from denoiser.run.tiling import denoise_tiled

    timed = TimedRunner(dn.backend)
    t0 = time.perf_counter()
    arr, info = read_image(photo)
    t1 = time.perf_counter()
    inner, dn.backend = dn.backend, timed  # Denoiser._runner adapts whatever dn.backend is
    try:
        run = dn._runner(arr.shape[2], None)
    finally:
        dn.backend = inner
    y = denoise_tiled(run, arr, dn.tile, dn.margin, dn.info.alignment, dn.tile_batch, dn.max_side)
    t2 = time.perf_counter()
    np.clip(y, 0.0, 1.0, out=y)
    t3 = time.perf_counter()
    write_image(out, y, info, 95, exist_ok=True)
    t4 = time.perf_counter()
    h, w = arr.shape[:2]
    return {"decode": t1 - t0, "backend": timed.seconds, "tiling": (t2 - t1) - timed.seconds, "finish": t3 - t2,
            "encode": t4 - t3, "total": t4 - t0, "pixels_ratio": timed.pixels / (h * w)}


def main() -> int:
    from bench_memory import make_photo

    from denoiser.run.inference import Denoiser

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "default-color.safetensors"))
    ap.add_argument("--size", type=parse_wh, default=(4000, 3000))
    ap.add_argument("--quality", nargs="+", default=["fast", "balanced"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    ap.add_argument("--no-cli", action="store_true", help="skip the fresh-process CLI run")
    args = ap.parse_args()
    w, h = args.size
    with tempfile.TemporaryDirectory(prefix="profile-photo-") as tmp:
        photo = Path(tmp) / "photo.jpg"
        make_photo(photo, w, h)
        dns = {q: Denoiser.load(args.model, quality=q, threads=args.threads) for q in args.quality}
        runs: dict[str, list[dict]] = {q: [] for q in dns}
        for _ in range(args.repeat):
            for q, dn in dns.items():
                time.sleep(0.5)  # let the previous row's thread pool stop spinning
                runs[q].append(profile_once(dn, photo, Path(tmp) / f"out-{q}.jpg"))
        keys = ("decode", "tiling", "backend", "finish", "encode", "total")
        print(f"{w}x{h} JPEG (quality 92, {w * h / 1e6:.0f} MP), median of {args.repeat}; seconds")
        print("| mode | ran | " + " | ".join(keys) + " | backend share | pixels computed / image |")
        print("|---|---|" + "---:|" * (len(keys) + 2))
        for q, rs in runs.items():
            med = {k: float(np.median([r[k] for r in rs])) for k in (*keys, "pixels_ratio")}
            ran = dns[q].describe().split(": ", 1)[-1]
            print(f"| {q} | {ran} | " + " | ".join(f"{med[k]:.2f}" for k in keys)
                  + f" | {100 * med['backend'] / med['total']:.0f} % | {med['pixels_ratio']:.3f} |")
        if not args.no_cli:
            for q in dns:
                cmd = [sys.executable, "-m", "denoiser", "denoise", str(photo), "-o", str(Path(tmp) / f"cli-{q}"),
                       "--model", args.model, "--quality", q]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                print(f"CLI end to end, quality {q}: {time.perf_counter() - t:.2f} s  "
                      f"(`denoiser denoise photo.jpg -o out --model {Path(args.model).name} --quality {q}`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
