"""One Markdown row per checkpoint: how far it has trained and what it scores on the dev sets.

    python scripts/score_models.py runs/default-v2-color/model.safetensors runs/study-mix-*/model.safetensors \
        --datasets ../shared/datasets

Models run in FP32 (quality balanced), whatever the default backend would pick, so that stages
compare as models, not as exports. Columns: training step, pixels seen, time trained (the
checkpoint's `elapsed_s`: CPU time for runs on a CPU budget clock), Set12
PSNR at Gaussian sigma 15/25/50 (the benchmark protocol) and SIDD12 PSNR (real smartphone
pairs): all 12, then the two halves apart. A choice between recipes (the noise-mix study) is
made on the first half (pairs 00-05) alone, so the second (06-11) is a fair read of the choice.
Both sets are for development only: the recipes never train on them. The model card's stage
rows and the noise-mix study come from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIGMAS = (15.0, 25.0, 50.0)
HEADER = ("| model | step | G px seen | train h | Set12 σ15 | σ25 | σ50 | SIDD12 | 00-05 (choice) | 06-11 (held out) |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")



def score_row(path: Path, datasets: Path, name: str | None = None) -> str:
    from denoiser.bench.evaluate import evaluate, evaluate_pairs
    from denoiser.core.checkpoint import read_checkpoint_meta
    from denoiser.run.inference import Denoiser

    meta = read_checkpoint_meta(path)
    dn = Denoiser.load(path, backend="onnxruntime", quality="balanced")  # FP32: stages compare as models, not exports
    set12 = [evaluate(dn, datasets / "Set12", s)["psnr"] for s in SIGMAS]
    sidd = datasets / "SIDD12"
    pairs = evaluate_pairs(dn, sidd / "noisy", sidd / "clean")
    per_pair = [r["psnr"] for r in sorted(pairs["per_image"], key=lambda r: r["image"])]
    half = len(per_pair) // 2  # SIDD12: pairs 00-05 choose, 06-11 are held out from the choice
    halves = [f"{sum(h) / len(h):.2f}" if h else "–" for h in (per_pair[:half], per_pair[half:])]
    px, hours = (meta.pixels_seen or 0) / 1e9, (meta.elapsed_s or 0) / 3600
    return (f"| {name or path.parent.name} | {'?' if meta.step is None else meta.step} | {px:.2f} | {hours:.2f} | "
            + " | ".join([*(f"{v:.2f}" for v in [*set12, pairs["psnr"]]), *halves]) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="checkpoints (.safetensors)")
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding Set12/ and SIDD12/")
    args = ap.parse_args(argv)
    for d in ("Set12", "SIDD12/noisy", "SIDD12/clean"):
        if not (args.datasets / d).is_dir():
            raise SystemExit(f"not a folder: {args.datasets / d}")
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        raise SystemExit(f"not found: {', '.join(missing)}")
    print(HEADER, flush=True)
    for path in args.models:
        print(score_row(path, args.datasets), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
