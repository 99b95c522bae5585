"""What a noise looks like, in four numbers, measured on (noisy, clean) pairs.

Used to compare synthetic noise with real noise (scripts/noise_stats.py) and in the camera
pipeline's tests. The noise is noisy - clean on the 0-255 scale, measured only where every
channel of the clean pixel lies in 20-235 (clipped pixels have no noise to measure):

- luma_lag1: correlation of the luma noise with its right and lower neighbours (white: 0;
  demosaicing, smoothing, JPEG and upscaling raise it);
- chroma_lag4: the same for the R-G noise four pixels apart (blotchy chroma noise: high);
- rg_corr: correlation of the R and G noise at the same pixel (independent channels: 0);
- bright_dark: noise std where the clean luma is in 160-235 over where it is in 20-80 (a
  camera's tone curve amplifies the shadows' noise: below 1; sRGB Poisson noise: above 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LO, HI = 20, 235
DARK, BRIGHT = (20, 80), (160, 235)


@dataclass(frozen=True)
class NoiseStats:
    luma_lag1: float
    chroma_lag4: float
    rg_corr: float
    bright_dark: float
    sigma: float  # overall luma noise std, 0-255 scale

    def row(self) -> list[str]:
        return [f"{v:.2f}" for v in (self.luma_lag1, self.chroma_lag4, self.rg_corr, self.bright_dark, self.sigma)]


def _lag_corr(n: np.ndarray, valid: np.ndarray, lag: int) -> float:
    """Correlation of n with itself shifted by `lag` pixels right and down, over valid pairs."""
    pairs = [(n[:, :-lag], n[:, lag:], valid[:, :-lag] & valid[:, lag:]),
             (n[:-lag], n[lag:], valid[:-lag] & valid[lag:])]
    a = np.concatenate([p[0][p[2]] for p in pairs])
    b = np.concatenate([p[1][p[2]] for p in pairs])
    return float(np.corrcoef(a, b)[0, 1]) if a.size > 2 else float("nan")


def noise_stats(noisy: np.ndarray, clean: np.ndarray) -> NoiseStats:
    """The four statistics of one (H, W, 3) pair, in [0, 1] floats or 0-255 numbers."""
    if noisy.shape != clean.shape or noisy.ndim != 3 or noisy.shape[2] != 3:
        raise ValueError(f"need two (H, W, 3) images of one size, got {noisy.shape} and {clean.shape}")
    scale = 255.0 if max(float(clean.max()), float(noisy.max())) <= 1.0 else 1.0
    c, x = clean.astype(np.float64) * scale, noisy.astype(np.float64) * scale
    n = x - c
    valid = ((c >= LO) & (c <= HI)).all(axis=2)
    luma = n @ np.array([0.299, 0.587, 0.114])
    clean_luma = c @ np.array([0.299, 0.587, 0.114])
    dark = valid & (clean_luma >= DARK[0]) & (clean_luma <= DARK[1])
    bright = valid & (clean_luma >= BRIGHT[0]) & (clean_luma <= BRIGHT[1])
    ratio = float(luma[bright].std() / luma[dark].std()) if dark.sum() > 100 and bright.sum() > 100 else float("nan")
    return NoiseStats(luma_lag1=_lag_corr(luma, valid, 1), chroma_lag4=_lag_corr(n[..., 0] - n[..., 1], valid, 4),
                      rg_corr=float(np.corrcoef(n[..., 0][valid], n[..., 1][valid])[0, 1]), bright_dark=ratio,
                      sigma=float(luma[valid].std()))


def mean_stats(stats: list[NoiseStats]) -> NoiseStats:
    """The average over pairs, ignoring pairs where a statistic could not be measured."""
    fields = NoiseStats.__dataclass_fields__
    return NoiseStats(**{f: float(np.nanmean([getattr(s, f) for s in stats])) for f in fields})
