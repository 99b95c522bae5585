"""The U-Net autoencoder.

Written as a wiring list: an encoder of conv blocks that halve the resolution, a decoder that
doubles it back and concatenates the matching encoder features (skip connections), and a
residual output (the network predicts the noise, which is subtracted from the input).

The model declares `alignment` (2**levels): inputs whose sides are not multiples of it are
edge-padded in `forward` and cropped back, the only place padding happens. Edge padding
(not reflect) so that even a 1x1 image works, and so ONNX export keeps dynamic sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoiser.core.config import ModelConfig


def conv_block(cin: int, cout: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    input_layer = "inc.0"  # the convs that see the image's channels (gray_from_color edits them)
    output_layer = "outc"
    keep_float: tuple[str, ...] = ()  # none by rule: export's sensitivity search finds the U-Net's

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        c, w, n = cfg.channels, cfg.width, cfg.blocks_per_level
        widths = [w * 2**i for i in range(cfg.levels + 1)]  # e.g. 32, 64, 128, 256

        self.inc = conv_block(c, widths[0], n)
        # encoder: downsample by a stride-2 conv, then a block at the new width
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i], 2, stride=2) for i in range(cfg.levels))
        self.enc = nn.ModuleList(conv_block(widths[i], widths[i + 1], n) for i in range(cfg.levels))
        # decoder: upsample by a stride-2 transposed conv, concat the skip, then a block
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(cfg.levels))
        )
        self.dec = nn.ModuleList(conv_block(2 * widths[i], widths[i], n) for i in reversed(range(cfg.levels)))
        self.outc = nn.Conv2d(widths[0], c, 3, padding=1)

    @property
    def alignment(self) -> int:
        return 2**self.cfg.levels

    @property
    def receptive_field(self) -> int:
        """Pixels on each side that can influence an output pixel (an upper bound).

        Tiling uses this as its minimum overlap. Each 3x3 conv at level l reaches 2**l pixels
        further, each 2x2 stride-2 down/up conv at level l reaches 2**l more.
        """
        n, radius = self.cfg.blocks_per_level, 0
        for level in range(self.cfg.levels + 1):
            convs = n if level == self.cfg.levels else 2 * n  # bottom level has one block
            radius += convs * 2**level
        radius += 2 * sum(2**lvl for lvl in range(self.cfg.levels))  # down + up convs
        return radius + 1  # output conv

    @staticmethod
    def activation_bytes(cfg: ModelConfig) -> float:
        """Peak memory of one forward pass per input pixel (tiling budgets with it).

        At full resolution a U-Net holds block features, the skip copy, the up-sampled tensor
        and their concatenation (about 8 * width floats per pixel); deeper levels add about a
        quarter. Measured for width 24 on 1032x1032 tiles: ONNX Runtime ~1020 B/px with its
        memory arena (which keeps its high-water mark and rounds up; ~700 B/px without it, but
        25% slower), PyTorch 590-970 B/px. This formula gives 1008 B/px for width 24.
        """
        return 4 * (10 * cfg.width + 4 * cfg.channels)

    def activation_bytes_per_pixel(self) -> float:
        return self.activation_bytes(self.cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        a = self.alignment
        pad_h, pad_w = (a - h % a) % a, (a - w % a) % a
        xp = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        skips = []
        y = self.inc(xp)
        for down, enc in zip(self.down, self.enc):
            skips.append(y)
            y = enc(down(y))
        for up, dec in zip(self.up, self.dec):
            y = dec(torch.cat([up(y), skips.pop()], dim=1))
        y = self.outc(y)
        if self.cfg.residual:
            y = xp - y
        return y[..., :h, :w]
