"""Check `denoiser estimate-noise` on a test set: estimated vs true Gaussian sigma, as a table.

    python scripts/check_noise_estimate.py --clean ../shared/datasets/Set12

Each clean image gets the noise of the benchmark protocol (docs/ARCHITECTURE.md),
clip(round(clean + N(0, sigma)), 0, 255) as 8-bit (what users upload), seed = its index in name
order; the estimate is compared with the sigma asked for. Prints a Markdown table (per image, errors in %) and a summary line; the exit
code is 1 if any error exceeds --tolerance.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from denoiser.core.data import list_images
from denoiser.core.imageio import read_image, to_uint8
from denoiser.core.noise.estimate import estimate_sigma
from denoiser.core.noise.ops import protocol_noisy_uint8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", default="../shared/datasets/Set12", help="folder of clean test images")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[10, 15, 25, 35, 50])
    ap.add_argument("--tolerance", type=float, default=10.0, help="largest acceptable error, in %%")
    args = ap.parse_args()

    files = list_images(args.clean)
    if not files:
        raise SystemExit(f"no images in {args.clean}")
    cleans = [to_uint8(read_image(f)[0]) for f in files]
    errors = np.zeros((len(files), len(args.sigmas)))
    start = time.perf_counter()
    for i, clean in enumerate(cleans):
        for j, sigma in enumerate(args.sigmas):
            noisy = protocol_noisy_uint8(clean, sigma, seed=i)
            errors[i, j] = (estimate_sigma(noisy / 255.0) - sigma) / sigma * 100
    seconds = time.perf_counter() - start

    print("| image | " + " | ".join(f"sigma {s:g}" for s in args.sigmas) + " |")
    print("|---|" + "---:|" * len(args.sigmas))
    for f, row in zip(files, errors):
        print(f"| {f.name} | " + " | ".join(f"{e:+.1f} %" for e in row) + " |")
    print("| mean error | " + " | ".join(f"{e:+.1f} %" for e in errors.mean(axis=0)) + " |")
    print("| mean abs error | " + " | ".join(f"{e:.1f} %" for e in np.abs(errors).mean(axis=0)) + " |")
    print("| worst abs error | " + " | ".join(f"{e:.1f} %" for e in np.abs(errors).max(axis=0)) + " |")
    worst = np.abs(errors).max()
    print(f"\n{len(files)} images x {len(args.sigmas)} sigmas: worst |error| {worst:.1f} % "
          f"(tolerance {args.tolerance:g} %), {seconds / errors.size:.2f} s per estimate")
    return 1 if worst > args.tolerance else 0


if __name__ == "__main__":
    raise SystemExit(main())
