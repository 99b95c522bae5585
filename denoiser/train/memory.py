"""What a training run will take in memory, estimated from its config before anything is built.

The app checks a run from the page against a limit with it, so that a form asking for width
1024 (two billion parameters: about 31 GiB of weights, gradients and Adam moments before the
first activation) is refused with a message instead of taking the server down. Each
architecture reports the peak bytes per pixel of a forward pass (`activation_bytes`);
training keeps every intermediate for the backward pass: measured on one CPU step, 1.4 to 3.8
times that (unet 1.4-1.5, resunet 2.1, s2dcnn 3.8), hence TRAIN_FACTOR.
"""

from __future__ import annotations

import math

import torch

from denoiser.core.config import ModelConfig, RunConfig
from denoiser.core.nets import ARCHS, build_model, count_parameters

TRAIN_FACTOR = 4.0
DOUBLING = ("unet", "resunet")  # widths double at every level
WIDEST = 1 << 16  # channels; past this no estimate is needed (nor attempted: it would overflow)


def parameter_count(cfg: ModelConfig) -> float:
    """Counted on the meta device (no memory), or inf for sizes far past any budget."""
    widest = cfg.width * 2 ** min(cfg.levels, 64) if cfg.arch in DOUBLING else cfg.width
    if widest > WIDEST or cfg.levels > 1024 or cfg.blocks_per_level > 64 or cfg.unshuffle > 64:
        return math.inf
    with torch.device("meta"):
        return float(count_parameters(build_model(cfg)))


def training_bytes(cfg: RunConfig) -> float:
    """Peak bytes of a run: weights, gradients, Adam's two moments (and an EMA copy plus the
    model it is copied into), a training step's activations, and the validation batch."""
    m, d = cfg.model, cfg.data
    if m.arch not in ARCHS:
        raise ValueError(f"unknown architecture {m.arch!r}; choose from {', '.join(ARCHS)}")
    copies = 4 + (2 if cfg.train.ema > 0 else 0)
    per_pixel = ARCHS[m.arch].activation_bytes(m)
    step = d.batch_size * d.crop**2 * (TRAIN_FACTOR * per_pixel + 4 * 4 * m.channels)  # + noisy, clean, out, grad
    val = d.val_count * d.val_crop**2 * (per_pixel + 3 * 4 * m.channels)  # noisy, clean and output held
    return 4 * copies * parameter_count(m) + step + val


def check_training_memory(cfg: RunConfig, limit: float) -> float:
    """The estimate, or ValueError saying what to lower when it is over `limit` bytes."""
    need = training_bytes(cfg)
    if need > limit:
        m, d = cfg.model, cfg.data
        size = "far more than any machine has" if math.isinf(need) else f"about {need / 2**30:.1f} GiB"
        raise ValueError(f"{m.arch} width {m.width}, levels {m.levels}, batch {d.batch_size}, crop {d.crop} and "
                         f"{d.val_count} validation crops would need {size} of memory; this server allows "
                         f"{limit / 2**30:.1f} GiB per run: lower the width, levels, batch size, crop or "
                         "validation crops")
    return need
