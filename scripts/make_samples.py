#!/usr/bin/env python
"""Create the small sample images in data/ from scikit-image's bundled images.

Outputs (by default into <repo>/data/):
  astronaut.png        colour (RGB), skimage.data.astronaut(), longer side 256 px
  coffee.png           colour (RGB), skimage.data.coffee(),    longer side 256 px
  camera.png           grayscale (L), skimage.data.camera(),   longer side 256 px
  noisy_astronaut.png  astronaut.png + Gaussian noise, sigma 25 (0-255 scale):
                       clip(round(clean + N(0, 25)), 0, 255), numpy.random.default_rng(0)

Every source image is checked to state a public-domain or CC0 licence in its
scikit-image docstring before it is used. Output is deterministic for fixed
scikit-image / Pillow / NumPy versions.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data"

# (output name, skimage.data function name, expected Pillow mode)
SOURCES = [
    ("astronaut.png", "astronaut", "RGB"),
    ("coffee.png", "coffee", "RGB"),
    ("camera.png", "camera", "L"),
]
NOISY_NAME = "noisy_astronaut.png"
NOISY_FROM = "astronaut.png"
LICENCE_MARKERS = ("public domain", "cc0")


def check_licence(func) -> None:
    doc = " ".join((func.__doc__ or "").lower().split())
    if not any(marker in doc for marker in LICENCE_MARKERS):
        raise SystemExit(
            f"skimage.data.{func.__name__}: docstring states no public-domain/CC0 licence; refusing to use it"
        )


def downscale(arr: np.ndarray, mode: str, max_side: int) -> Image.Image:
    img = Image.fromarray(np.ascontiguousarray(arr)).convert(mode)
    w, h = img.size
    scale = max_side / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img


def add_gaussian_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma, size=clean.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--max-side", type=int, default=256, help="longer side in px after resizing (default: 256)")
    parser.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0-255 scale (default: 25)")
    parser.add_argument("--seed", type=int, default=0, help="seed for numpy.random.default_rng (default: 0)")
    args = parser.parse_args(argv)

    import skimage
    import skimage.data

    args.out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, func_name, mode in SOURCES:
        func = getattr(skimage.data, func_name)
        check_licence(func)
        img = downscale(func(), mode, args.max_side)
        img.save(args.out / name, format="PNG", optimize=True)
        written[name] = img

    clean = np.asarray(written[NOISY_FROM])
    noisy = Image.fromarray(add_gaussian_noise(clean, args.sigma, args.seed), mode=written[NOISY_FROM].mode)
    noisy.save(args.out / NOISY_NAME, format="PNG", optimize=True)

    total = 0
    print(f"scikit-image {skimage.__version__}, Pillow {Image.__version__}, NumPy {np.__version__}")
    for name in [n for n, _, _ in SOURCES] + [NOISY_NAME]:
        path = args.out / name
        with Image.open(path) as im:
            size = path.stat().st_size
            total += size
            print(f"{path}: mode={im.mode} size={im.size[0]}x{im.size[1]} bytes={size}")
    print(f"total bytes={total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
