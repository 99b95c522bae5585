"""Dead ReLU channels in residual blocks: found, and revived without changing the model's output."""

from __future__ import annotations

import torch

from denoiser.core.nets import arch_config, build_model
from denoiser.train.revive import dead_units, hidden_channels, residual_blocks, revive


def resunet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch_config("resunet", channels=3, width=8, levels=2, blocks_per_level=1, unshuffle=2))


def probe() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(4, 3, 48, 48, generator=g)
    return clean + torch.randn(clean.shape, generator=g) * 0.1


def kill(model: torch.nn.Module, name: str, channels: list[int]) -> None:
    """What Adam at a high lr does: a large negative bias, so the channel never fires."""
    with torch.no_grad():
        residual_blocks(model)[name].conv1.bias[channels] = -1e4


def test_dead_channels_are_found_by_block():
    model, x = resunet(), probe()
    born_dead = {k: set(v.tolist()) for k, v in dead_units(model, x).items()}  # a random init has a few
    kill(model, "body.0", [0, 3, 5])
    kill(model, "enc.0.0", [1])
    dead = {k: set(v.tolist()) for k, v in dead_units(model, x).items()}
    expected = {k: set(v) for k, v in born_dead.items()}
    expected.setdefault("body.0", set()).update({0, 3, 5})
    expected.setdefault("enc.0.0", set()).add(1)
    assert dead == expected


def test_revive_keeps_the_output_and_brings_the_channels_back():
    model, x = resunet(), probe()
    with torch.no_grad():  # give the zero-initialised parts weight, so a change would show
        for block in residual_blocks(model).values():
            block.conv2.weight.normal_(0, 0.05)
    kill(model, "body.0", list(range(16)))  # the whole bottom block, as found in the v2 runs
    with torch.no_grad():
        before = model(x)
    revived = revive(model, x, torch.Generator().manual_seed(2))
    with torch.no_grad():
        after = model(x)
    assert revived["body.0"] == 16
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert dead_units(model, x) == {}
    # the revived channels learn again: conv2's columns that read them get gradient
    model(x).square().mean().backward()
    assert residual_blocks(model)["body.0"].conv2.weight.grad.abs().sum() > 0


def test_models_without_residual_blocks_have_nothing_to_revive():
    torch.manual_seed(0)
    unet = build_model(arch_config("unet", channels=3, width=8, levels=2))
    assert dead_units(unet, probe()) == {} and revive(unet, probe()) == {} and hidden_channels(unet) == 0
