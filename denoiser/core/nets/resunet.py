"""A residual U-Net in the style of DRUNet (Zhang et al., "Plug-and-Play Image Restoration
with Deep Denoiser Prior", 2021), scaled to a CPU budget.

Wiring list: pixel-unshuffle (space-to-depth, as in FFDNet) so even the top level works at
half resolution; a head conv; per level `blocks_per_level` residual blocks (conv-ReLU-conv +
identity, no batch norm); a strided 2x2 conv down, widths doubling, so every level costs
about the same MACs per pixel while the coarse levels get the capacity; at the bottom more
blocks; transposed 2x2 convs up with *additive* skips (cheaper than concatenation); a tail
conv, pixel-shuffle back, and a residual output (the network predicts the noise).

Alignment is unshuffle * 2**levels; inputs are edge-padded to it in `forward`, as the U-Net does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoiser.core.config import ModelConfig


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def blocks(width: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(width) for _ in range(n)))


class ResUNet(nn.Module):
    input_layer = "head"
    output_layer = "tail"
    # The tail writes the noise estimate itself (pixel-shuffled, four pixels per value): its
    # rounding lands on the output unfiltered, and it costs under 3 % of the MACs in float.
    keep_float: tuple[str, ...] = ("tail",)

    def __init__(self, cfg: ModelConfig = ModelConfig(arch="resunet")):
        super().__init__()
        self.cfg = cfg
        s, c, n, L = cfg.unshuffle, cfg.channels, cfg.blocks_per_level, cfg.levels
        widths = [cfg.width * 2**i for i in range(L + 1)]
        self.head = nn.Conv2d(c * s * s, widths[0], 3, padding=1)
        self.enc = nn.ModuleList(blocks(widths[i], n) for i in range(L))
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(L))
        self.body = blocks(widths[L], n)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(L)))
        self.dec = nn.ModuleList(blocks(widths[i], n) for i in reversed(range(L)))
        self.tail = nn.Conv2d(widths[0], c * s * s, 3, padding=1)

    @property
    def alignment(self) -> int:
        return self.cfg.unshuffle * 2**self.cfg.levels

    @property
    def receptive_field(self) -> int:
        """Upper bound, in input pixels, of how far an input pixel reaches (tiling's margin).

        A 3x3 conv at level l reaches s * 2**l pixels, a 2x2 stride-2 conv (down or up) at
        level l as much again; the unshuffle cell itself adds s - 1.
        """
        s, n, L = self.cfg.unshuffle, self.cfg.blocks_per_level, self.cfg.levels
        radius = 2 * s  # head + tail
        for level in range(L):
            radius += 2 * (2 * n) * s * 2**level  # encoder + decoder blocks, two convs each
            radius += 2 * s * 2**level  # down + up
        radius += 2 * n * s * 2**L  # bottom blocks
        return radius + s - 1

    @staticmethod
    def activation_bytes(cfg: ModelConfig) -> float:
        """Peak bytes per input pixel of one forward pass (tiling budgets with it).

        The top level, at 1/s**2 of the pixels, dominates: its skip, the block's input,
        hidden and output tensors, plus the coarser skips (each half as many floats per pixel),
        and the full-resolution input, padded copy and output. Doubled for the runtimes'
        arenas, which keep their high-water mark (ONNX Runtime, measured on the U-Net).
        """
        s, w, c = cfg.unshuffle, cfg.width, cfg.channels
        floats = 5 * w / s**2 + 4 * c
        return 2 * 4 * floats

    def activation_bytes_per_pixel(self) -> float:
        return self.activation_bytes(self.cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        a, s = self.alignment, self.cfg.unshuffle
        xp = F.pad(x, (0, (a - w % a) % a, 0, (a - h % a) % a), mode="replicate")
        y = self.head(F.pixel_unshuffle(xp, s) if s > 1 else xp)
        skips = []
        for enc, down in zip(self.enc, self.down):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.body(y)
        for up, dec in zip(self.up, self.dec):
            y = dec(up(y) + skips.pop())
        y = self.tail(y)
        if s > 1:
            y = F.pixel_shuffle(y, s)
        if self.cfg.residual:
            y = xp - y
        return y[..., :h, :w]
