"""The score table of a model card: `denoiser eval` at each noise level, as one Markdown table.

    python scripts/model_scores.py checkpoints/default-gray.safetensors --clean ../shared/datasets/Set12
    python scripts/model_scores.py checkpoints/default-color.safetensors --clean DIR --sigmas 25 --noises camera

Rows: Gaussian sigma 15, 25, 50 and 75 (and 0, clean input: PSNR against the input itself), then
each noise spec (default: the "camera" chain). The same protocol loop as `denoiser eval` and
scripts/bench_quality.py (denoiser.bench.evaluate), through the default backend.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--clean", required=True, help="folder of clean test images")
    ap.add_argument("--sigmas", type=float, nargs="*", default=[15, 25, 50, 75, 0])
    ap.add_argument("--noises", nargs="*", default=["camera"], help="noise specs scored after the sigmas")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", help="also write the full results here")
    args = ap.parse_args()
    if not Path(args.model).is_file():
        raise SystemExit(f"model not found: {args.model}")
    if not Path(args.clean).is_dir():
        raise SystemExit(f"not a folder: {args.clean}")

    from denoiser.bench.evaluate import evaluate
    from denoiser.run.inference import Denoiser

    dn = Denoiser.load(args.model, backend=args.backend)
    runs = [(f"Gaussian σ{s:g}" if s else "clean input (σ0)", {"sigma": s}) for s in args.sigmas]
    runs += [(spec, {"sigma": 0.0, "noise": spec}) for spec in args.noises]
    results = []
    print(f"{Path(args.model).name} on {args.clean} ({dn.backend.describe()})", file=sys.stderr)
    print("| noise | noisy PSNR | denoised PSNR | gain | denoised SSIM |")
    print("|---|---:|---:|---:|---:|")
    for label, kw in runs:
        r = evaluate(dn, args.clean, **kw)
        results.append(r)
        noisy = "-" if kw["sigma"] == 0 and "noise" not in kw else f"{r['psnr_noisy']:.2f}"
        gain = "-" if noisy == "-" else f"{r['psnr_gain']:+.2f}"
        print(f"| {label} | {noisy} | {r['psnr']:.2f} | {gain} | {r['ssim']:.4f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
