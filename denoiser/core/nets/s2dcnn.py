"""A plain conv stack at reduced resolution, in the style of FFDNet (Zhang et al., "FFDNet:
Toward a Fast and Flexible Solution for CNN based Image Denoising", 2018).

Wiring list: pixel-unshuffle by `unshuffle` (space-to-depth: a 2x2 cell becomes 4 channels, so
every conv runs on a quarter of the pixels with 4x the channels per step); `depth` 3x3
conv-ReLU layers of `width` channels (DnCNN's body, without batch norm so that inference needs
no folding and small batches train well); a conv back to the cell's channels; pixel-shuffle;
residual output. Wide GEMMs on few pixels: what CPUs run fastest.

`ModelConfig.levels` is the depth here (conv layers, head and tail included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoiser.core.config import ModelConfig


class S2DCNN(nn.Module):
    input_layer = "body.0"

    def __init__(self, cfg: ModelConfig = ModelConfig(arch="s2dcnn")):
        super().__init__()
        self.cfg = cfg
        s, c, w, depth = cfg.unshuffle, cfg.channels, cfg.width, cfg.levels
        if depth < 2:
            raise ValueError(f"s2dcnn needs at least 2 layers (levels), got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(c * s * s, w, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(w, c * s * s, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.output_layer = f"body.{len(layers) - 1}"
        self.keep_float = (self.output_layer,)  # it writes the noise estimate: as resunet's tail
        # A deep plain stack without batch norm does not learn from PyTorch's default init (its
        # activations shrink layer by layer: measured stuck at the noisy input's PSNR). He init
        # keeps their scale; a zero output conv starts the model at the identity.
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(convs[-1].weight)
        nn.init.zeros_(convs[-1].bias)

    @property
    def alignment(self) -> int:
        return self.cfg.unshuffle

    @property
    def receptive_field(self) -> int:
        s = self.cfg.unshuffle
        return self.cfg.levels * s + s - 1  # each conv reaches one cell (s pixels) further

    @staticmethod
    def activation_bytes(cfg: ModelConfig) -> float:
        # Two feature maps of `width` channels at 1/s**2 of the pixels are live at a time,
        # plus the full-resolution input, padded copy and output; doubled for runtime arenas.
        s, w, c = cfg.unshuffle, cfg.width, cfg.channels
        return 2 * 4 * (2 * w / s**2 + 4 * c)

    def activation_bytes_per_pixel(self) -> float:
        return self.activation_bytes(self.cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = self.cfg.unshuffle
        xp = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s), mode="replicate")
        y = self.body(F.pixel_unshuffle(xp, s) if s > 1 else xp)
        if s > 1:
            y = F.pixel_shuffle(y, s)
        if self.cfg.residual:
            y = xp - y
        return y[..., :h, :w]
