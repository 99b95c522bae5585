"""Noise models as batched torch ops with an explicit generator.

Noise is synthesized on whatever device the clean batch is on (the training GPU), so the data
loader only has to deliver clean crops. Every op takes a `torch.Generator` living on that
device and draws its parameters per sample from the ranges of its spec (spec.py); the same
generator state gives the same noise. Outputs are not clipped (round_to_8bit does that), so their
statistics are exactly the requested ones. Which function runs a kind is declared with the kind
(kinds.py); the functions of the simple kinds live here, the camera pipeline in camera.py.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from denoiser.core.config import NoiseConfig
from denoiser.core.noise.kinds import KINDS
from denoiser.core.noise.spec import (
    NOISE_KINDS,
    NoiseModel,
    Op,
    format_spec,
    noise_help,
    parse_noise_spec,
    parse_spec,
)

__all__ = ["NOISE_KINDS", "noise_help", "parse_noise_spec", "parse_spec", "format_spec", "synthesize", "apply_model",
           "op_function", "add_gaussian", "round_to_8bit", "protocol_noisy_uint8"]


def _draw(r: tuple[float, float], n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n values uniform in [r[0], r[1]], one per sample, as a (n, 1, 1, 1) float32 tensor."""
    u = torch.rand(n, generator=generator, device=device)
    return (r[0] + (r[1] - r[0]) * u).view(-1, 1, 1, 1)


def add_gaussian(clean: torch.Tensor, sigma255: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """clean (B,C,H,W) in [0,1] plus N(0, sigma^2) per sample; not clipped."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    return clean + noise * (sigma255.to(clean.dtype) / 255.0).view(-1, 1, 1, 1)


def gaussian(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    return add_gaussian(x, _draw(op.sigma, x.shape[0], gen, x.device), gen)


def poisson_gaussian(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """a * Poisson(x / a) + N(0, b): variance a * x + b, mean x (Foi et al. 2008's sensor model)."""
    b = x.shape[0]
    a = (_draw(op.shot, b, gen, x.device) / 255.0) ** 2  # variance per unit intensity
    read = _draw(op.read, b, gen, x.device) / 255.0
    photons = torch.poisson(x.clamp_min(0).float() / a.clamp_min(1e-12), generator=gen)
    shot = torch.where(a > 0, photons * a, x.float()).to(x.dtype)  # shot 0: no photon noise at all
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return shot + noise * read.to(x.dtype)


def correlated(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """White noise blurred by a per-sample Gaussian, rescaled to the requested per-pixel sigma."""
    b, c, h, w = x.shape
    sigma = _draw(op.sigma, b, gen, x.device) / 255.0
    scale = _draw(op.scale, b, gen, x.device).view(-1, 1)
    r = max(1, math.ceil(3 * op.scale[1]))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32).view(1, -1)
    k = torch.exp(-(t**2) / (2 * scale.clamp_min(1e-3) ** 2))  # scale 0 -> a delta: white noise
    k = k / k.sum(1, keepdim=True)
    # The 2-D kernel is k (x) k, whose L2 norm is |k|^2: dividing by it keeps the per-pixel sigma.
    norm = (k**2).sum(1).view(-1, 1, 1, 1)
    white = torch.randn((1, b * c, h + 2 * r, w + 2 * r), generator=gen, device=x.device)
    kc = k.repeat_interleave(c, 0)  # one kernel per (sample, channel) for a grouped convolution
    y = F.conv2d(white, kc.view(b * c, 1, -1, 1), groups=b * c)  # padded noise: no border effects
    y = F.conv2d(y, kc.view(b * c, 1, 1, -1), groups=b * c).view(b, c, h, w)
    return x + (y * (sigma / norm)).to(x.dtype)


def speckle(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    s = _draw(op.sigma, x.shape[0], gen, x.device) / 255.0
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return x + x * noise * s.to(x.dtype)


def salt_pepper(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    amount = _draw(op.amount, b, gen, x.device)
    hit = torch.rand((b, 1, h, w), generator=gen, device=x.device) < amount  # whole pixels, all channels
    white = torch.rand((b, 1, h, w), generator=gen, device=x.device) < 0.5
    return torch.where(hit, white.to(x.dtype), x)


def jpeg(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """Round-trip each sample through a JPEG encoder at a quality drawn per sample.

    There is no JPEG encoder for torch tensors, so this op alone leaves the device: each sample
    is encoded and decoded by OpenCV's libjpeg on the CPU, in a thread pool (OpenCV releases the
    GIL), and copied back. The quality is still drawn from the device generator, so it stays seeded.
    """
    b, c = x.shape[:2]
    lo, hi = int(op.quality[0]), int(op.quality[1])
    u = torch.rand(b, generator=gen, device=x.device)
    quality = (lo + torch.floor(u * (hi - lo + 1))).clamp(max=hi).int().tolist()
    u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack(list(_jpeg_pool().map(_jpeg_round_trip, u8, quality)))
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255.0


def _jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    rgb = img.shape[2] == 3
    src = np.ascontiguousarray(img[:, :, ::-1] if rgb else img[:, :, 0])  # OpenCV wants BGR: luma weights
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if rgb:  # cameras and most encoders subsample chroma 2x2; say so rather than rely on the default
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, buf = cv2.imencode(".jpg", src, params)
    if not ok:
        raise RuntimeError("OpenCV failed to JPEG-encode a training crop")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return dec[:, :, ::-1] if rgb else dec[..., None]


@lru_cache(maxsize=1)
def _jpeg_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="jpeg-noise")


OpFunction = Callable[[torch.Tensor, Op, torch.Generator], torch.Tensor]


def op_function(kind: str) -> OpFunction:
    """The torch function of a kind, as its declaration names it (kinds.KINDS[kind].op)."""
    return _import_function(KINDS[kind].op)


@lru_cache(maxsize=None)
def _import_function(path: str) -> OpFunction:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _run_chain(chain: tuple[Op, ...], x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    for op in chain:
        x = op_function(op.kind)(x, op, gen)
    return x


def apply_model(clean: torch.Tensor, model: NoiseModel, generator: torch.Generator) -> torch.Tensor:
    """The noisy version of a clean (B, C, H, W) batch in [0, 1]; not clipped."""
    if len(model.chains) == 1:  # no draw for the choice: a plain spec keeps its random stream
        return _run_chain(model.chains[0], clean, generator)
    w = torch.tensor(model.weights, device=clean.device, dtype=torch.float64)
    edges = (w.cumsum(0) / w.sum())[:-1]
    pick = torch.bucketize(torch.rand(clean.shape[0], generator=generator, device=clean.device, dtype=torch.float64),
                           edges, right=True)
    out = torch.empty_like(clean)
    for k, chain in enumerate(model.chains):
        idx = (pick == k).nonzero().view(-1)
        if idx.numel():
            out[idx] = _run_chain(chain, clean[idx], generator)
    return out


def round_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """What saving as an 8-bit file does: clip to [0, 1] and round to 1/255 steps."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def synthesize(clean: torch.Tensor, cfg: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """Make the noisy half of a training pair from a clean batch."""
    b = clean.shape[0]
    noisy = apply_model(clean, parse_spec(cfg.spec), generator)
    if cfg.quantize_prob > 0:
        pick = torch.rand(b, generator=generator, device=clean.device) < cfg.quantize_prob
        noisy = torch.where(pick.view(-1, 1, 1, 1), round_to_8bit(noisy), noisy)
    return noisy


def protocol_noisy_uint8(clean_u8, sigma: float, seed: int):
    """The benchmark protocol (docs/ARCHITECTURE.md): clip(round(clean + N(0, sigma)), 0, 255) as uint8.

    numpy in, numpy out, so that evaluation does not depend on torch's RNG stream.
    """
    rng = np.random.default_rng(seed)
    noisy = clean_u8.astype(np.float64) + rng.normal(0.0, sigma, clean_u8.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
