"""Noise models as batched torch ops with an explicit generator.

Noise is synthesized on whatever device the clean batch is on (the training GPU), so the data
loader only has to deliver clean crops. Every function takes a `torch.Generator` living on
that device; the same seed gives the same noise.
"""

from __future__ import annotations

import torch

from .config import NoiseConfig

NOISE_KINDS = {
    "gaussian": "gaussian:S or gaussian:LO-HI  additive white Gaussian noise, sigma on the 0-255 scale",
}


def parse_noise_spec(spec: str, quantize_prob: float = NoiseConfig.quantize_prob) -> NoiseConfig:
    """Parse a short CLI spec such as ``gaussian:25`` or ``gaussian:5-50`` into a config."""
    kind, _, arg = spec.strip().lower().partition(":")
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise {kind!r}; known: {', '.join(NOISE_KINDS)}")
    lo, hi = NoiseConfig.sigma_min, NoiseConfig.sigma_max
    if arg:
        try:
            parts = [float(p) for p in arg.split("-")]
        except ValueError:
            raise ValueError(f"bad noise spec {spec!r}: expected e.g. gaussian:25 or gaussian:5-50") from None
        if len(parts) == 1:
            lo = hi = parts[0]
        elif len(parts) == 2:
            lo, hi = parts
        else:
            raise ValueError(f"bad noise spec {spec!r}: expected e.g. gaussian:25 or gaussian:5-50")
    if not 0 <= lo <= hi:
        raise ValueError(f"bad noise spec {spec!r}: need 0 <= low <= high")
    return NoiseConfig(kind=kind, sigma_min=lo, sigma_max=hi, quantize_prob=quantize_prob)


def sample_sigma(n: int, cfg: NoiseConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """One sigma per sample, uniform in [sigma_min, sigma_max], on the 0-255 scale."""
    u = torch.rand(n, generator=generator, device=device)
    return cfg.sigma_min + (cfg.sigma_max - cfg.sigma_min) * u


def add_gaussian(clean: torch.Tensor, sigma255: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """clean (B,C,H,W) in [0,1] plus N(0, sigma^2) per sample; not clipped."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    return clean + noise * (sigma255.to(clean.dtype) / 255.0).view(-1, 1, 1, 1)


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """What saving as an 8-bit file does: clip to [0, 1] and round to 1/255 steps."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def synthesize(clean: torch.Tensor, cfg: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """Make the noisy half of a training pair from a clean batch."""
    b = clean.shape[0]
    sigma = sample_sigma(b, cfg, generator, clean.device)
    noisy = add_gaussian(clean, sigma, generator)
    if cfg.quantize_prob > 0:
        pick = torch.rand(b, generator=generator, device=clean.device) < cfg.quantize_prob
        noisy = torch.where(pick.view(-1, 1, 1, 1), quantize8(noisy), noisy)
    return noisy


def protocol_noisy_uint8(clean_u8, sigma: float, seed: int):
    """DESIGN.md benchmark protocol: clip(round(clean + N(0, sigma)), 0, 255) as uint8.

    numpy in, numpy out, so that evaluation does not depend on torch's RNG stream.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    noisy = clean_u8.astype(np.float64) + rng.normal(0.0, sigma, clean_u8.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
