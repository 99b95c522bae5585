import pytest
import torch

from denoiser.config import ModelConfig
from denoiser.model import UNet, count_parameters, macs_per_pixel

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


def test_receptive_field_bounds_influence():
    """A pixel change must not reach outputs further away than the declared receptive field."""
    torch.manual_seed(0)
    model = UNet(ModelConfig(width=8, levels=2)).eval()
    x = torch.rand(1, 3, 128, 128)
    y = x.clone()
    y[..., 64, 64] += 1.0
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    reach = max((ys - 64).abs().max().item(), (xs - 64).abs().max().item())
    assert 0 < reach <= model.receptive_field


def test_size_helpers():
    model = UNet(ModelConfig(width=8, levels=2))
    assert count_parameters(model) > 1000 and macs_per_pixel(model) > 1000


def test_gray_from_color_computes_the_color_model_on_gray_input():
    from denoiser.model import gray_from_color

    torch.manual_seed(0)
    # float64: the check is about the algebra, not float32 rounding
    color = UNet(ModelConfig(channels=3, width=8, levels=2)).double().eval()
    for p in color.parameters():  # non-trivial weights everywhere, biases included
        p.data.normal_(0, 0.2)
    gray = gray_from_color(color).eval()
    assert gray.cfg.channels == 1 and gray.cfg.width == color.cfg.width
    x = torch.rand(2, 1, 29, 35, dtype=torch.float64)
    with torch.no_grad():
        want = color(x.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
        got = gray(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError, match="3-channel"):
        gray_from_color(gray)
