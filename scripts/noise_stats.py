"""Real noise beside synthetic noise, in the four numbers of denoiser.core.noise.stats.

    python scripts/noise_stats.py --pairs ../shared/datasets/SIDD12/noisy ../shared/datasets/SIDD12/clean \
        --clean ../shared/datasets/CBSD432 --specs camera camera-v1 gaussian:25 --limit 24

One row per real pair set (--pairs, repeatable) and per noise spec drawn on the --clean photos
(the same 8-bit protocol as `denoiser eval --noise`: each image seeded by its index). Use it to
see whether a synthetic noise looks like a camera's; the statistics are averages over images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = "| noise | luma lag-1 | chroma lag-4 | R/G corr | bright/dark | luma σ |\n|---|---|---|---|---|---|"


def pair_rows(noisy_dir: str, clean_dir: str, limit: int | None) -> list:
    from denoiser.bench.evaluate import matched_pairs
    from denoiser.core.imageio import read_image, to_uint8
    from denoiser.core.noise.stats import noise_stats

    stats = []
    for noisy, clean in matched_pairs(noisy_dir, clean_dir)[:limit]:
        stats.append(noise_stats(to_uint8(read_image(noisy)[0]), to_uint8(read_image(clean)[0])))
    return stats


def spec_rows(clean_dir: str, spec: str, limit: int | None, crop: int) -> list:
    from denoiser.bench.evaluate import noisy_uint8
    from denoiser.core.data import list_images
    from denoiser.core.imageio import read_image, to_uint8
    from denoiser.core.noise.stats import noise_stats

    stats = []
    for i, path in enumerate(list_images(clean_dir)[:limit]):
        clean = to_uint8(read_image(path)[0])[:crop, :crop]
        if clean.ndim == 2 or clean.shape[2] != 3:
            continue
        stats.append(noise_stats(noisy_uint8(clean, 0.0, seed=i, noise=spec), clean))
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", nargs=2, action="append", default=[], metavar=("NOISY_DIR", "CLEAN_DIR"),
                    help="real noisy/clean pairs matched by file name (repeatable)")
    ap.add_argument("--clean", help="clean colour photos to draw the --specs on")
    ap.add_argument("--specs", nargs="*", default=["camera", "camera-v1"], help="noise specs to measure")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per row")
    ap.add_argument("--crop", type=int, default=512, help="measure synthetic noise on the top-left crop this size")
    args = ap.parse_args(argv)
    if not args.pairs and not args.clean:
        ap.error("give --pairs NOISY CLEAN and/or --clean DIR")
    from denoiser.core.noise.stats import mean_stats

    rows = [(f"real: {Path(n).parent.name or n}", pair_rows(n, c, args.limit)) for n, c in args.pairs]
    if args.clean:
        rows += [(f"`{spec}`", spec_rows(args.clean, spec, args.limit, args.crop)) for spec in args.specs]
    print(HEADER)
    for name, stats in rows:
        if not stats:
            raise SystemExit(f"{name}: no colour images to measure")
        print(f"| {name} | " + " | ".join(mean_stats(stats).row()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
