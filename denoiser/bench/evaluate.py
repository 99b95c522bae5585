"""Quality evaluation under the benchmark protocol (docs/ARCHITECTURE.md).

Each clean image gets `clip(round(clean + N(0, sigma)), 0, 255)` noise with a fixed seed per
image (base seed + its index in name order), saved-as-8-bit semantics; the denoised output is
rounded to 8 bits too, as a user would save it. PSNR and SSIM are measured on those 8-bit
results against the clean image. Gray sets stay gray. A file of a clean folder whose name
says it is noisy (noisy_astronaut.png, img-noisy.png, noisy/img.png) is no clean reference:
it is left out and listed under "skipped".
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from denoiser.core.data import list_images
from denoiser.core.imageio import read_image, to_uint8
from denoiser.core.metrics import psnr, ssim
from denoiser.core.noise.ops import apply_model, protocol_noisy_uint8
from denoiser.core.noise.spec import parse_spec
from denoiser.run.inference import Denoiser

# "noisy" or "noised" as a word of a file or folder name: not "denoised", not "noisytown"
NOISY_NAME = re.compile(r"(?<![a-z])nois(?:y|ed)(?![a-z])", re.IGNORECASE)


def split_noisy_names(files: list[Path], root: Path) -> tuple[list[Path], list[str]]:
    """(files to score as clean, names of those left out as noisy by their name under `root`)."""
    keep, noisy = [], []
    for f in files:
        rel = f.relative_to(root).as_posix()
        if NOISY_NAME.search(rel):
            noisy.append(rel)
        else:
            keep.append(f)
    return keep, noisy


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


def _score(fn: Callable[[np.ndarray], np.ndarray], items, meta: dict) -> dict:
    """Run `fn` on each (name, noisy_u8, clean_u8) and average PSNR/SSIM of the 8-bit results."""
    rows, t_total, pixels = [], 0.0, 0
    for name, noisy, clean in items:
        pixels += clean.shape[0] * clean.shape[1]
        t = time.perf_counter()
        out = to_uint8(fn(noisy.astype(np.float32) / 255.0))
        t_total += time.perf_counter() - t
        p_in, s_in = _scores(noisy, clean)
        p_out, s_out = _scores(out, clean)
        rows.append({"image": name, "psnr_noisy": p_in, "ssim_noisy": s_in, "psnr": p_out, "ssim": s_out})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_noisy", "ssim_noisy", "psnr", "ssim")}
    return {**meta, "images": len(rows), **mean, "psnr_gain": mean["psnr"] - mean["psnr_noisy"],
            "seconds_per_megapixel": t_total / (pixels / 1e6), "per_image": rows}


def evaluate_fn(fn: Callable[[np.ndarray], np.ndarray], clean_dir: str | Path | list[Path], sigma: float,
                seed: int = 0, limit: int | None = None, noise: str | None = None) -> dict:
    """Score any denoiser under the protocol: `fn` maps an (H, W, C) float32 image in [0, 1]
    to its denoised version. Baselines (scripts/bench_quality.py) go through the same loop as
    our models, so every number in a table was made the same way. `noise` (a spec) replaces
    the Gaussian `sigma`. `clean_dir` is a folder, or a list of image files (a subset such as
    a training recipe's held-out images), scored in that order. Files named as noisy are left
    out (`split_noisy_names`).
    """
    if isinstance(clean_dir, (str, Path)):
        files, skipped = split_noisy_names(list_images(clean_dir), Path(clean_dir))
    else:
        files, skipped = [Path(p) for p in clean_dir], []
        clean_dir = _common_folder(files)
    files = files[:limit]
    if not files:
        left = f" (left out as noisy by name: {', '.join(skipped)})" if skipped else ""
        raise ValueError(f"no clean images in {clean_dir}{left}")

    def items():
        for i, path in enumerate(files):
            clean = to_uint8(read_image(path)[0])
            yield path.name, noisy_uint8(clean, sigma, seed + i, noise), clean

    level = {"noise": noise} if noise else {"sigma": sigma}
    left_out = {"skipped": [{"image": name, "reason": "named as noisy, not clean"} for name in skipped]}
    return _score(fn, items(), {"clean_dir": str(clean_dir), **level, "seed": seed, **(left_out if skipped else {})})


def _common_folder(files: list[Path]) -> str:
    parents = {str(Path(p).parent) for p in files}
    return parents.pop() if len(parents) == 1 else f"{len(files)} files"


def matched_pairs(noisy_dir: str | Path, clean_dir: str | Path) -> list[tuple[Path, Path]]:
    """(noisy, clean) files matched by file stem; every unmatched file is an error, listed."""
    noisy = {p.stem: p for p in list_images(noisy_dir)}
    clean = {p.stem: p for p in list_images(clean_dir)}
    lone = sorted(set(noisy) ^ set(clean))
    if lone:
        raise ValueError(f"pairs do not match by file name: {', '.join(lone[:8])}"
                         f"{' ...' if len(lone) > 8 else ''} ({len(lone)} without a partner)")
    if not noisy:
        raise ValueError(f"no images in {noisy_dir}")
    return [(noisy[k], clean[k]) for k in sorted(noisy)]


def evaluate_pairs_fn(fn: Callable[[np.ndarray], np.ndarray], noisy_dir: str | Path, clean_dir: str | Path,
                      limit: int | None = None) -> dict:
    """Score `fn` on real noisy/clean pairs (no synthetic noise): the same JSON as evaluate_fn,
    8-bit outputs against the 8-bit reference."""
    def items():
        for noisy_path, clean_path in matched_pairs(noisy_dir, clean_dir)[:limit]:
            noisy, clean = to_uint8(read_image(noisy_path)[0]), to_uint8(read_image(clean_path)[0])
            if noisy.shape != clean.shape:
                raise ValueError(f"{noisy_path.name}: noisy {noisy.shape} and clean {clean.shape} differ in size")
            yield clean_path.name, noisy, clean

    return _score(fn, items(), {"noisy_dir": str(noisy_dir), "clean_dir": str(clean_dir), "noise": "real pairs"})


def evaluate_pairs(denoiser: Denoiser, noisy_dir: str | Path, clean_dir: str | Path, limit: int | None = None) -> dict:
    result = evaluate_pairs_fn(denoiser.denoise_array, noisy_dir, clean_dir, limit)
    return {"model": denoiser.info.path, "backend": denoiser.backend.describe(), **result}


def evaluate(denoiser: Denoiser, clean_dir: str | Path, sigma: float, seed: int = 0,
             limit: int | None = None, noise: str | None = None) -> dict:
    result = evaluate_fn(denoiser.denoise_array, clean_dir, sigma, seed, limit, noise)
    gray = {"gray_model": str(denoiser.gray_path)} if denoiser.gray_path else {}  # gray files ran on it
    return {"model": denoiser.info.path, **gray, "backend": denoiser.backend.describe(), **result}
