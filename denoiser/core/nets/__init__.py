"""The denoising networks, by name: `ARCHS` maps `ModelConfig.arch` to its class.

Every network answers for itself what the rest of the package needs to know, so tiling,
export, quantization, the model cards and the app hold no architecture-specific formula:

- `alignment`: input sides are padded to a multiple of it inside `forward`;
- `receptive_field`: how far (pixels) an input pixel can reach, tiling's minimum margin;
- `activation_bytes(cfg)`, `activation_bytes_per_pixel()`: peak memory of a forward pass per
  input pixel (from the config alone, so that exports older than the field can be budgeted);
- `input_layer` / `output_layer`: the convs that see the image's channels (for `gray_from_color`);
- `keep_float`: layers FP16/INT8 exports always keep in float (export's search may add more).

`macs_per_pixel` and `count_parameters` are counted from the module itself, so a new
architecture gets them for free, and so are the tensor shapes a config needs (`tensor_shapes`,
from a model built on the meta device: no memory), which a file's weights must match. To add one: a file with an `nn.Module` taking a ModelConfig,
and an entry in ARCHS.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from denoiser.core.config import ModelConfig, check_model_sizes
from denoiser.core.nets.resunet import ResUNet
from denoiser.core.nets.s2dcnn import S2DCNN
from denoiser.core.nets.unet import UNet

ARCHS: dict[str, type[nn.Module]] = {"unet": UNet, "resunet": ResUNet, "s2dcnn": S2DCNN}

# Reasonable sizes per architecture for `denoiser train --arch NAME` without size flags
# (fields not named keep ModelConfig's defaults).
ARCH_DEFAULTS: dict[str, dict] = {
    "unet": {},
    "resunet": {"width": 32, "levels": 3, "blocks_per_level": 2, "unshuffle": 2},
    "s2dcnn": {"width": 64, "levels": 12, "unshuffle": 2},
}


# Bounds far beyond any useful model, checked before a config read from a file is built: a
# stranger's metadata must not ask for 2**100 channels (levels=100) or a loop of a billion layers.
def check_config(cfg: ModelConfig) -> None:
    """ValueError unless `cfg` names a known architecture and every size field is an integer
    within config.MODEL_BOUNDS."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown architecture {cfg.arch!r}; choose from {', '.join(ARCHS)}")
    check_model_sizes(cfg)


def tensor_shapes(cfg: ModelConfig) -> tuple[dict[str, tuple[int, ...]], nn.Module]:
    """(state-dict shapes, the model on the meta device) for `cfg`: built without memory, so a
    config can be judged (shapes, parameter count, alignment...) before the real model is made."""
    check_config(cfg)
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except (RuntimeError, ValueError, OverflowError) as e:  # sizes past what tensors can hold
        raise ValueError(f"cannot build a {cfg.arch} of this size ({e})") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, model


def build_model(cfg: ModelConfig) -> nn.Module:
    try:
        cls = ARCHS[cfg.arch]
    except KeyError:
        raise ValueError(f"unknown architecture {cfg.arch!r}; choose from {', '.join(ARCHS)}") from None
    return cls(cfg)


def arch_config(arch: str, **overrides) -> ModelConfig:
    """A ModelConfig for `arch` with its ARCH_DEFAULTS, then `overrides` (None values skipped)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    fields = {**ARCH_DEFAULTS[arch], **{k: v for k, v in overrides.items() if v is not None}}
    return ModelConfig(arch=arch, **fields)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def macs_per_pixel(model: nn.Module) -> float:
    """Multiply-accumulates per input pixel of every conv, counted by running the model once
    on an aligned input (hooks read each conv's output size), so no formula can drift."""
    side = 4 * model.alignment
    total = 0

    def count(mod, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):  # each input pixel scatters into k outputs
            total += _inp[0].numel() * k * mod.out_channels // mod.groups
        else:
            total += out.numel() * k * mod.in_channels // mod.groups

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        ref = next(model.parameters())
        model(torch.zeros(1, model.cfg.channels, side, side, dtype=ref.dtype, device=ref.device))
    finally:
        for h in hooks:
            h.remove()
    return total / side**2


def gray_from_color(model: nn.Module) -> nn.Module:
    """A 1-channel model computing exactly what `model` does to a gray image read as RGB,
    averaged back to gray.

    The input conv sums its three colour filters (the input is the same in each channel),
    the output conv averages its three. With a pixel-unshuffle entry the channels are
    (colour, sub-pixel) pairs, and the sum/average runs over colour for each sub-pixel.
    A warm start for training a gray model: it begins at the colour model's gray quality.
    """
    if model.cfg.channels != 3:
        raise ValueError(f"expected a 3-channel model, got {model.cfg.channels} channels")
    ref = next(model.parameters())
    gray = build_model(dataclasses.replace(model.cfg, channels=1)).to(device=ref.device, dtype=ref.dtype)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w_in = state[f"{model.input_layer}.weight"]  # (out, 3 * s*s, k, k)
    state[f"{model.input_layer}.weight"] = w_in.unflatten(1, (3, -1)).sum(dim=1)
    for name in ("weight", "bias"):  # (3 * s*s, in, k, k) and (3 * s*s,)
        key = f"{model.output_layer}.{name}"
        state[key] = state[key].unflatten(0, (3, -1)).mean(dim=0)
    gray.load_state_dict(state)
    return gray
