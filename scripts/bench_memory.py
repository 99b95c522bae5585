"""Peak memory of `denoiser denoise` on one large photo, measured by GNU time in a subprocess.

    python scripts/bench_memory.py                          # 6000x4000 JPEG, default settings
    python scripts/bench_memory.py --backend torch --memory-mb 512

Runs the real CLI under `/usr/bin/time -v` (install with `apt-get install -y time`) and reads
"Maximum resident set size". The model is the shipped default if it exists, else a
random-weight U-Net of the same size (width 24, 3 levels): memory and speed do not depend on
the weights. With backend auto on a CPU the checkpoint's ONNX export is made (and cached)
before the measured run, so the number is what every later run costs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoiser.core.config import parse_wh  # noqa: E402


def model_path(arg: str | None, workdir: Path) -> Path:
    from denoiser.run.inference import default_model_path

    if arg:
        return Path(arg)
    if default_model_path().exists():
        return default_model_path()
    import torch

    from denoiser.core.checkpoint import save_checkpoint
    from denoiser.core.config import ModelConfig
    from denoiser.core.nets.unet import UNet

    torch.manual_seed(0)
    return save_checkpoint(workdir / "standin-w24-l3.safetensors", UNet(ModelConfig(width=24, levels=3)),
                           note="random weights: a stand-in of the default model's size for benchmarks")


def make_photo(path: Path, w: int, h: int, seed: int = 0) -> None:
    """A camera-like noisy JPEG: smooth colour fields and edges plus Gaussian noise (sigma 15)."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    xs = np.linspace(0, 1, w, dtype=np.float32)
    for y0 in range(0, h, 500):  # row blocks keep this script's own memory small
        ys = np.linspace(y0 / h, min(y0 + 500, h) / h, min(500, h - y0), endpoint=False, dtype=np.float32)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        base = np.stack([120 + 80 * np.sin(6 * xx + 3 * yy), 110 + 70 * np.cos(5 * yy), 100 + 90 * xx * yy], -1)
        base += 40 * ((np.sin(40 * xx) * np.sin(30 * yy)) > 0)[..., None]  # edges
        out[y0:y0 + len(ys)] = np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(out).save(path, quality=92)


def run(cmd: list[str]) -> dict:
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    err = proc.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err)
    model = re.search(r"^model: (.*)$", err, re.M)
    if proc.returncode != 0 or not rss:
        raise SystemExit(f"run failed ({proc.returncode}):\n{err[-3000:]}")
    seconds = sum(float(p) * 60**i for i, p in enumerate(reversed(wall.group(1).split(":"))))
    return {"peak_rss_gb": int(rss.group(1)) / 2**20, "wall_s": seconds, "model": model.group(1) if model else "?"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="default: the shipped model, else a random-weight stand-in of its size")
    ap.add_argument("--size", type=parse_wh, default=(6000, 4000), help="WIDTHxHEIGHT of the test photo")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--memory-mb", type=float, help="passed to the CLI (default: the CLI's)")
    ap.add_argument("--limit-gb", type=float, default=2.5, help="exit 1 if the peak is above this")
    args = ap.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time: apt-get install -y time")
    w, h = args.size
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        model = model_path(args.model, work)
        if args.backend in ("auto", "onnxruntime") and model.suffix == ".safetensors":
            from denoiser.run.export_cache import onnx_for_checkpoint

            onnx_for_checkpoint(model)  # the one-off export is not what we measure
        photo = work / "photo.jpg"
        make_photo(photo, w, h)
        cmd = [sys.executable, "-m", "denoiser", "denoise", str(photo), "-o", str(work / "out"), "--model",
               str(model), "--backend", args.backend]
        if args.memory_mb:
            cmd += ["--memory-mb", str(args.memory_mb)]
        r = run(cmd)
        with Image.open(work / "out" / "photo.jpg") as im:
            assert im.size == (w, h), im.size
    mp = w * h / 1e6
    ok = r["peak_rss_gb"] <= args.limit_gb
    print(f"command: {' '.join(cmd[2:])}")
    print("| image | backend (as run) | --memory-mb | peak RSS | wall | MP/s |")
    print("|---|---|---|---|---|---|")
    print(f"| {w}x{h} JPEG ({mp:.0f} MP) | {r['model']} | {args.memory_mb or 'default'} | "
          f"{r['peak_rss_gb']:.2f} GB | {r['wall_s']:.0f} s | {mp / r['wall_s']:.3f} |")
    print(f"peak RSS {r['peak_rss_gb']:.2f} GB {'<=' if ok else '>'} limit {args.limit_gb} GB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
