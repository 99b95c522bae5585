"""Estimate an image's noise level: the sigma, on the 0-255 scale, of Gaussian-like noise.

The estimate combines two classical, training-free ideas:

* Chen, Zhu & Heng, "An Efficient Statistical Method for Image Noise Level Estimation"
  (ICCV 2015): the eigenvalues of the covariance of an image's 7x7 patches that belong to
  noise alone are the same (sigma^2), while image structure lives in a few large ones. Walking
  down from the largest, the first tail whose mean equals its median is the noise-only part,
  and that mean is sigma^2. It uses the whole bulk of noise eigenvalues, so it avoids the
  downward bias of taking the smallest one.
* Liu, Tanaka & Okutomi, "Single-Image Noise Level Estimation for Blind Denoising" (IEEE TIP
  2013): textured patches inflate the estimate, so keep only weakly textured ones, those whose
  summed squared gradients stay under what pure noise of the current sigma reaches 99 % of the
  time, and iterate. The threshold here comes from simulated unit noise, not a table.

One more rule handles uploads, whose noise was clipped at 0 and 255: patches whose mean lies
within 2 sigma of either end are left out, since clipping shrinks their noise. The result is
the sigma of the noise before clipping. Colour images get one estimate per channel; the image's
sigma is their mean. On Set12 with clipped, rounded 8-bit Gaussian noise of sigma 10-50 the
estimate is within about 5 % (scripts/check_noise_estimate.py; BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PATCH = 7
MAX_PATCHES = 65_000  # a regular subsample beyond this: as accurate, and fast on big photos
TEXTURE_QUANTILE = 0.99
CLIP_MARGIN = 2.0  # in sigmas
ITERATIONS = 8


def estimate_sigma(image: np.ndarray) -> float:
    """Noise sigma (0-255 scale) of an (H, W) or (H, W, C) float image in [0, 1]."""
    return float(np.mean(estimate_channel_sigmas(image)))


def estimate_channel_sigmas(image: np.ndarray) -> list[float]:
    img = np.asarray(image, np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if min(img.shape[:2]) < 2 * PATCH:
        raise ValueError(f"image of {img.shape[1]}x{img.shape[0]} px is too small to estimate noise "
                         f"(needs at least {2 * PATCH}x{2 * PATCH})")
    return [_estimate_plane(img[..., c] * 255.0) for c in range(img.shape[2])]


def _estimate_plane(plane: np.ndarray) -> float:
    import torch

    h, w = plane.shape
    stride = max(1, int(np.ceil(np.sqrt((h - PATCH + 1) * (w - PATCH + 1) / MAX_PATCHES))))
    windows = sliding_window_view(plane, (PATCH, PATCH))[::stride, ::stride]
    # torch, not numpy, for the products below: numpy's threaded BLAS ran 7x slower on a busy 2-core machine.
    patches = torch.from_numpy(np.ascontiguousarray(windows.reshape(-1, PATCH * PATCH), np.float64))
    texture = torch.from_numpy(_texture(plane)[::stride, ::stride].reshape(-1))
    means = patches.mean(dim=1)
    sigma = _eigen_sigma(patches)
    for _ in range(ITERATIONS):
        keep = ((texture < _unit_texture_threshold() * sigma**2)
                & (means > CLIP_MARGIN * sigma) & (means < 255.0 - CLIP_MARGIN * sigma))
        if int(keep.sum()) < 4 * PATCH * PATCH:  # too few flat patches to trust: keep what we have
            break
        new = _eigen_sigma(patches[keep])
        done = abs(new - sigma) <= 1e-3 * max(sigma, 1e-6)
        sigma = new
        if done:
            break
    return sigma


def _eigen_sigma(patches) -> float:
    """Chen et al.: the mean of the largest tail of eigenvalues whose mean equals its median."""
    import torch

    n = patches.shape[0]
    total = patches.sum(dim=0)
    cov = (patches.T @ patches - torch.outer(total, total) / n) / max(1, n - 1)
    eig = np.sort(torch.linalg.eigvalsh(cov).numpy())  # ascending
    mean = eig.mean()
    for k in range(len(eig), 0, -1):
        tail = eig[:k]
        mean = tail.mean()
        if (tail > mean).sum() == (tail < mean).sum():
            break
    return float(np.sqrt(max(mean, 0.0)))


def _box_sum(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    c = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return c[dy:, dx:] - c[:-dy, dx:] - c[dy:, :-dx] + c[:-dy, :-dx]


def _texture(plane: np.ndarray) -> np.ndarray:
    """Per 7x7 patch position: the sum of squared horizontal and vertical differences inside it."""
    dh = np.diff(plane, axis=1) ** 2
    dv = np.diff(plane, axis=0) ** 2
    return _box_sum(dh, PATCH, PATCH - 1) + _box_sum(dv, PATCH - 1, PATCH)


@lru_cache(maxsize=1)
def _unit_texture_threshold() -> float:
    """The texture that unit-sigma white noise stays under TEXTURE_QUANTILE of the time."""
    noise = np.random.default_rng(20151207).standard_normal((384, 384))
    return float(np.quantile(_texture(noise), TEXTURE_QUANTILE))


@dataclass
class NoiseEstimate:
    path: str
    sigma: float | None = None  # 0-255 scale
    channels: list[float] = field(default_factory=list)
    error: str | None = None


def estimate_files(inputs: list[str]) -> list[NoiseEstimate]:
    """Estimate every image file given (folders are walked recursively); bad files get an error."""
    from denoiser.core.data import list_images
    from denoiser.core.imageio import ImageError, read_image

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        paths.extend(list_images(p) if p.is_dir() else [p])
    results = []
    for path in paths:
        try:
            arr, _ = read_image(path)
            per_channel = estimate_channel_sigmas(arr)
            results.append(NoiseEstimate(str(path), float(np.mean(per_channel)), per_channel))
        except (ImageError, ValueError) as e:
            results.append(NoiseEstimate(str(path), error=str(e)))
    return results
