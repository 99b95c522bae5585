"""The README's noise figure: a clean crop, the old `camera-v1` chain, the `camera` pipeline, and a
real smartphone crop (SIDD) beside its reference, each shown at 2x so the noise's grain is visible.

    python scripts/noise_figure.py --sidd ../shared/datasets/SIDD12 -o docs/noise_camera.png

The synthetic tiles use the shipped sample data/astronaut.png (public domain); the real tiles are
a 96-pixel crop of one SIDD pair (Abdelhamed, Lin, Brown, CVPR 2018; academic use).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TILE, ZOOM, LABEL = 96, 2, 18


def _tile(arr: np.ndarray, text: str) -> Image.Image:
    img = Image.fromarray(arr).resize((TILE * ZOOM, TILE * ZOOM), Image.NEAREST)
    out = Image.new("RGB", (img.width, img.height + LABEL), "white")
    out.paste(img, (0, LABEL))
    ImageDraw.Draw(out).text((4, 3), text, fill="black")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sidd", required=True, help="folder with noisy/ and clean/ SIDD pairs")
    ap.add_argument("--pair", default="00", help="which SIDD pair (file stem)")
    ap.add_argument("--at", type=int, nargs=2, default=(200, 200), metavar=("X", "Y"), help="SIDD crop corner")
    ap.add_argument("--iso", default="3200", help="ISO of the camera tile")
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "noise_camera.png"))
    args = ap.parse_args(argv)
    from denoiser.bench.evaluate import noisy_uint8
    from denoiser.core.imageio import read_image, to_uint8

    clean = to_uint8(read_image(ROOT / "data" / "astronaut.png")[0])[40:40 + TILE, 100:100 + TILE]
    x, y = args.at
    sidd = Path(args.sidd)
    real = [to_uint8(read_image(sidd / kind / f"{args.pair}.png")[0])[y:y + TILE, x:x + TILE]
            for kind in ("clean", "noisy")]
    tiles = [_tile(clean, "clean"), _tile(noisy_uint8(clean, 0, seed=1, noise="camera-v1"), "camera-v1 (old)"),
             _tile(noisy_uint8(clean, 0, seed=1, noise=f"camera:iso={args.iso}"), f"camera, ISO {args.iso}"),
             _tile(real[0], "SIDD reference"), _tile(real[1], "SIDD noisy (real)")]
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (i * (t.width + 4), 0))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
