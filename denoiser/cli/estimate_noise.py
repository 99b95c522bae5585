"""`denoiser estimate-noise`: each image's noise sigma from the image alone (core.noise.estimate)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    n = sub.add_parser("estimate-noise", help="estimate each image's noise level (sigma on the 0-255 scale)",
                       description=(
                           "Print each image's noise sigma on the 0-255 scale, as Gaussian-like noise, from the image "
                           "alone (PCA of weakly textured patches; see denoiser/core/noise/estimate.py): within about "
                           "5 % for Gaussian sigma 10-50 on Set12. Colour images also show each channel. Unreadable "
                           "files are reported and make the exit code 1."))
    n.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders (walked recursively)")
    n.add_argument("--json", action="store_true", help="print JSON, one record per image")
    n.set_defaults(func=run)
    return n


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from denoiser.core.noise.estimate import estimate_files

    results = estimate_files(args.inputs)
    if not results:
        raise ValueError("no images found in the given inputs")
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    for r in results:
        if r.error:
            print(f"{r.path}: error: {r.error}", file=sys.stderr)
        elif not args.json:
            per_channel = f"  (R {r.channels[0]:.2f}, G {r.channels[1]:.2f}, B {r.channels[2]:.2f})" if len(
                r.channels) == 3 else ""
            print(f"{r.sigma:7.2f}  {r.path}{per_channel}")
    return 1 if any(r.error for r in results) else 0
