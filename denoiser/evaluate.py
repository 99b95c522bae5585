"""Quality evaluation under the benchmark protocol of DESIGN.md.

Each clean image gets `clip(round(clean + N(0, sigma)), 0, 255)` noise with a fixed seed per
image (base seed + its index in name order), saved-as-8-bit semantics; the denoised output is
rounded to 8 bits too, as a user would save it. PSNR and SSIM are measured on those 8-bit
results against the clean image. Gray sets stay gray.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .data import list_images
from .imageio import read_image, to_uint8
from .inference import Denoiser
from .metrics import psnr, ssim
from .noise import protocol_noisy_uint8


def _scores(a_u8: np.ndarray, b_u8: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(a_u8.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    b = torch.from_numpy(b_u8.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    return float(psnr(a, b)[0]), float(ssim(a, b)[0])


def evaluate(denoiser: Denoiser, clean_dir: str | Path, sigma: float, seed: int = 0,
             limit: int | None = None) -> dict:
    files = list_images(clean_dir)[:limit]
    if not files:
        raise ValueError(f"no images in {clean_dir}")
    rows = []
    t_total, pixels = 0.0, 0
    for i, path in enumerate(files):
        clean_f, _ = read_image(path)
        clean = to_uint8(clean_f)
        pixels += clean.shape[0] * clean.shape[1]
        noisy = protocol_noisy_uint8(clean, sigma, seed + i)
        t = time.perf_counter()
        out = to_uint8(denoiser.denoise_array(noisy.astype(np.float32) / 255.0))
        t_total += time.perf_counter() - t
        p_in, s_in = _scores(noisy, clean)
        p_out, s_out = _scores(out, clean)
        rows.append({"image": path.name, "psnr_noisy": p_in, "ssim_noisy": s_in, "psnr": p_out, "ssim": s_out})
    mp = pixels / 1e6
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_noisy", "ssim_noisy", "psnr", "ssim")}
    return {"model": denoiser.info.path, "backend": denoiser.backend.describe(), "clean_dir": str(clean_dir),
            "sigma": sigma, "seed": seed, "images": len(rows), **mean,
            "psnr_gain": mean["psnr"] - mean["psnr_noisy"], "seconds_per_megapixel": t_total / mp, "per_image": rows}
