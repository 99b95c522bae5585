import pytest
import torch

from denoiser.core.config import ModelConfig
from denoiser.core.nets import count_parameters, macs_per_pixel
from denoiser.core.nets.unet import UNet

CONFIGS = [ModelConfig(channels=c, width=8, levels=lv) for c in (1, 3) for lv in (1, 2, 3)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"c{c.channels}-l{c.levels}")
@pytest.mark.parametrize("size", [(1, 1), (37, 53), (64, 64)])
def test_any_size_keeps_shape(cfg, size):
    model = UNet(cfg).eval()
    x = torch.rand(2, cfg.channels, *size)
    with torch.no_grad():
        assert model(x).shape == x.shape


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"c{c.channels}-l{c.levels}")
def test_alignment_is_declared(cfg):
    assert UNet(cfg).alignment == 2**cfg.levels


def test_residual_output_is_input_minus_prediction():
    model = UNet(ModelConfig(width=8, levels=2)).eval()
    torch.nn.init.zeros_(model.outc.weight)
    torch.nn.init.zeros_(model.outc.bias)
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        assert torch.allclose(model(x), x)  # zero noise prediction -> identity


def test_skip_connections_carry_gradient_to_first_block():
    model = UNet(ModelConfig(width=8, levels=2))
    model(torch.rand(1, 3, 16, 16)).sum().backward()
    assert model.inc[0].weight.grad.abs().sum() > 0 and model.dec[-1][0].weight.grad.abs().sum() > 0


# Receptive field, gray conversion and MAC counts: tests/core/test_nets.py, for every architecture.
def test_size_helpers():
    model = UNet(ModelConfig(width=8, levels=2))
    assert count_parameters(model) > 1000 and macs_per_pixel(model) > 1000
