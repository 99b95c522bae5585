"""Quality evaluation under the benchmark protocol of DESIGN.md.

Each clean image gets `clip(round(clean + N(0, sigma)), 0, 255)` noise with a fixed seed per
image (base seed + its index in name order), saved-as-8-bit semantics; the denoised output is
rounded to 8 bits too, as a user would save it. PSNR and SSIM are measured on those 8-bit
results against the clean image. Gray sets stay gray.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import list_images
from .imageio import read_image, to_uint8
from .inference import Denoiser
from .metrics import psnr, ssim
from .noise import apply_model, protocol_noisy_uint8
from .noise_spec import parse_spec


def _scores(a_u8: np.ndarray, b_u8: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(a_u8.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    b = torch.from_numpy(b_u8.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    return float(psnr(a, b)[0]), float(ssim(a, b)[0])


def noisy_uint8(clean_u8: np.ndarray, sigma: float, seed: int, noise: str | None = None) -> np.ndarray:
    """The protocol's noisy input: Gaussian `sigma`, or any noise spec (e.g. "camera") drawn
    with a torch generator seeded `seed`; clipped and rounded to 8 bits either way."""
    if noise is None:
        return protocol_noisy_uint8(clean_u8, sigma, seed)
    x = torch.from_numpy(clean_u8.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    y = apply_model(x, parse_spec(noise), torch.Generator().manual_seed(seed))
    return to_uint8(y[0].numpy().transpose(1, 2, 0))


def evaluate_fn(fn: Callable[[np.ndarray], np.ndarray], clean_dir: str | Path, sigma: float, seed: int = 0,
                limit: int | None = None, noise: str | None = None) -> dict:
    """Score any denoiser under the protocol: `fn` maps an (H, W, C) float32 image in [0, 1]
    to its denoised version. Baselines (scripts/bench_quality.py) go through the same loop as
    our models, so every number in a table was made the same way. `noise` (a spec) replaces
    the Gaussian `sigma`.
    """
    files = list_images(clean_dir)[:limit]
    if not files:
        raise ValueError(f"no images in {clean_dir}")
    rows = []
    t_total, pixels = 0.0, 0
    for i, path in enumerate(files):
        clean_f, _ = read_image(path)
        clean = to_uint8(clean_f)
        pixels += clean.shape[0] * clean.shape[1]
        noisy = noisy_uint8(clean, sigma, seed + i, noise)
        t = time.perf_counter()
        out = to_uint8(fn(noisy.astype(np.float32) / 255.0))
        t_total += time.perf_counter() - t
        p_in, s_in = _scores(noisy, clean)
        p_out, s_out = _scores(out, clean)
        rows.append({"image": path.name, "psnr_noisy": p_in, "ssim_noisy": s_in, "psnr": p_out, "ssim": s_out})
    mp = pixels / 1e6
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_noisy", "ssim_noisy", "psnr", "ssim")}
    level = {"noise": noise} if noise else {"sigma": sigma}
    return {"clean_dir": str(clean_dir), **level, "seed": seed, "images": len(rows), **mean,
            "psnr_gain": mean["psnr"] - mean["psnr_noisy"], "seconds_per_megapixel": t_total / mp, "per_image": rows}


def evaluate(denoiser: Denoiser, clean_dir: str | Path, sigma: float, seed: int = 0,
             limit: int | None = None, noise: str | None = None) -> dict:
    result = evaluate_fn(denoiser.denoise_array, clean_dir, sigma, seed, limit, noise)
    gray = {"gray_model": str(denoiser.gray_path)} if denoiser.gray_path else {}  # gray files ran on it
    return {"model": denoiser.info.path, **gray, "backend": denoiser.backend.describe(), **result}
