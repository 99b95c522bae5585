"""`denoiser eval`: PSNR/SSIM of a model under the benchmark protocol (bench.evaluate), as JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys

from denoiser.cli.options import add_runtime, noise_spec


def add_parser(sub) -> argparse.ArgumentParser:
    v = sub.add_parser("eval", help="PSNR/SSIM on a folder of clean images (the benchmark protocol of docs/ARCHITECTURE.md), as JSON")
    v.add_argument("--model", default=None, help="default: the shipped models (gray files: the gray one)")
    v.add_argument("--clean", metavar="DIR", help="folder of clean images, made noisy by --sigma or --noise (files named as noisy, "
                                                "e.g. noisy_x.png, are skipped and listed)")
    v.add_argument("--pairs", nargs=2, metavar=("NOISY_DIR", "CLEAN_DIR"),
                   help="real noisy/clean pairs matched by file name (no synthetic noise), e.g. SIDD crops")
    v.add_argument("--sigma", type=float, default=25.0, help="Gaussian sigma on the 0-255 scale (default %(default)s)")
    v.add_argument("--noise", metavar="SPEC", type=noise_spec,
                   help="score on any noise spec instead of Gaussian --sigma, e.g. camera (see train --help)")
    v.add_argument("--seed", type=int, default=0, help="noise seed of the first image (then +1 per image)")
    v.add_argument("--limit", type=int, help="only the first N images")
    v.add_argument("--per-image", action="store_true", help="include per-image scores")
    add_runtime(v, device=False, tile=False)
    v.set_defaults(func=run)
    return v


def run(args: argparse.Namespace) -> int:
    from denoiser.bench.evaluate import evaluate, evaluate_pairs
    from denoiser.run.inference import Denoiser

    if bool(args.clean) == bool(args.pairs):
        raise ValueError("eval needs --clean DIR (synthetic noise) or --pairs NOISY_DIR CLEAN_DIR (real pairs)")
    dn = Denoiser.load(args.model, backend=args.backend, threads=args.threads, quality=args.quality)
    if args.pairs:
        result = evaluate_pairs(dn, *args.pairs, limit=args.limit)
    else:
        result = evaluate(dn, args.clean, args.sigma, seed=args.seed, limit=args.limit, noise=args.noise)
        for s in result.get("skipped", []):
            print(f"denoiser eval: skipped {s['image']}: {s['reason']}", file=sys.stderr)
    if not args.per_image:
        result.pop("per_image")
    print(json.dumps(strict_json(result), indent=2, allow_nan=False))
    return 0


def strict_json(value):
    """JSON has no Infinity or NaN (jq and browsers reject them): such scores print as null.
    The one that comes up is the PSNR of identical images, the noisy input at --sigma 0."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value
