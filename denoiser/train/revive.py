"""Find and revive dead ReLU units in residual blocks, without changing what the model computes.

A residual block computes x + conv2(relu(conv1(x))). A hidden channel whose conv1 output is
negative on every input is dead: ReLU passes no gradient to it, so nothing ever brings it
back, and the block loses that share of its capacity for good. Adam at a high learning rate
kills them (each weight moves by about lr per step, whatever its scale; the coarse levels,
whose weights are smallest, die first), and a dead block is invisible in the loss: the model
just stops improving.

`revive` gives each dead channel fresh conv1 weights (He init, zero bias) and zeroes the conv2
column that reads it. The channel's output was zero before and its conv2 weights are zero now,
so the model's output is unchanged, but the channel fires again and conv2's column gets
gradient from the next step on. Optimizer moments of revived weights should start afresh
(a packed snapshot resumes that way).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def residual_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Every submodule with conv1/conv2 convolutions (a residual block), by name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(getattr(m, "conv1", None), nn.Conv2d) and isinstance(getattr(m, "conv2", None), nn.Conv2d)}


@torch.no_grad()
def dead_units(model: nn.Module, probe: torch.Tensor) -> dict[str, torch.Tensor]:
    """Block name -> indices of the hidden channels that stay <= 0 everywhere on `probe`.

    `probe` should look like what the model sees in training (noisy crops at several noise levels).
    Blocks with no dead channel are left out; a model without residual blocks returns {}.
    """
    blocks = residual_blocks(model)
    if not blocks:
        return {}
    peaks: dict[str, torch.Tensor] = {}
    hooks = [block.conv1.register_forward_hook(_record_peak(peaks, name)) for name, block in blocks.items()]
    try:
        was_training = model.training
        model.eval()
        model(probe)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    dead = {name: torch.nonzero(peak <= 0).flatten() for name, peak in peaks.items()}
    return {name: idx for name, idx in dead.items() if idx.numel()}


def _record_peak(peaks: dict[str, torch.Tensor], name: str):
    def hook(_module, _inputs, out):
        peak = out.detach().amax(dim=(0, 2, 3)).float().cpu()
        peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak
    return hook


@torch.no_grad()
def revive(model: nn.Module, probe: torch.Tensor, generator: torch.Generator | None = None,
           rounds: int = 5) -> dict[str, int]:
    """Re-initialise the dead hidden channels found on `probe`; returns block name -> channels revived.

    A fresh channel can be born dead too (its random filter negative on every input of a block
    whose inputs are all alike), so up to `rounds` draws are made; what is still dead after
    them stays as it was.
    """
    blocks = residual_blocks(model)
    revived: dict[str, set[int]] = {}
    for _ in range(rounds):
        dead = dead_units(model, probe)
        if not dead:
            break
        for name, idx in dead.items():
            conv1, conv2 = blocks[name].conv1, blocks[name].conv2
            fan_in = conv1.in_channels * conv1.kernel_size[0] * conv1.kernel_size[1]
            fresh = torch.randn((len(idx), *conv1.weight.shape[1:]), generator=generator) * math.sqrt(2.0 / fan_in)
            conv1.weight[idx] = fresh.to(conv1.weight)
            if conv1.bias is not None:
                conv1.bias[idx] = 0
            conv2.weight[:, idx] = 0
            revived.setdefault(name, set()).update(idx.tolist())
    return {name: len(idx) for name, idx in revived.items()}


def hidden_channels(model: nn.Module) -> int:
    """How many hidden channels the residual blocks have in all (to say what share is dead)."""
    return sum(b.conv1.out_channels for b in residual_blocks(model).values())
