import numpy as np
import pytest
import torch

from denoiser.config import NoiseConfig
from denoiser.noise import add_gaussian, parse_noise_spec, protocol_noisy_uint8, quantize8, sample_sigma, synthesize


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_gaussian_sigma_matches_request(sigma):
    clean = torch.full((4, 3, 128, 128), 0.5)
    gen = torch.Generator().manual_seed(0)
    noisy = add_gaussian(clean, torch.full((4,), sigma), gen)
    measured = (noisy - clean).std().item() * 255
    assert abs(measured - sigma) / sigma < 0.02


def test_sigma_drawn_per_sample_within_range():
    cfg = NoiseConfig(sigma_min=10, sigma_max=30)
    s = sample_sigma(1000, cfg, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert s.min() >= 10 and s.max() <= 30 and s.std() > 4  # spread over the range, not constant


def test_same_seed_same_noise_and_different_seed_differs():
    clean = torch.rand(2, 3, 16, 16)
    cfg = NoiseConfig()
    a = synthesize(clean, cfg, torch.Generator().manual_seed(3))
    b = synthesize(clean, cfg, torch.Generator().manual_seed(3))
    c = synthesize(clean, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_quantized_noise_is_8bit():
    q = quantize8(torch.tensor([-0.2, 0.1234, 1.7]))
    assert torch.allclose(q * 255, torch.round(q * 255)) and q.min() >= 0 and q.max() <= 1


@pytest.mark.parametrize("spec,lo,hi", [("gaussian:25", 25, 25), ("gaussian:5-50", 5, 50), ("GAUSSIAN", 0, 55)])
def test_parse_noise_spec(spec, lo, hi):
    cfg = parse_noise_spec(spec)
    assert (cfg.kind, cfg.sigma_min, cfg.sigma_max) == ("gaussian", lo, hi)


@pytest.mark.parametrize("bad", ["poisson", "gaussian:x", "gaussian:50-5", "gaussian:1-2-3"])
def test_parse_noise_spec_rejects_bad(bad):
    with pytest.raises(ValueError):
        parse_noise_spec(bad)


def test_protocol_noise_is_clipped_rounded_and_seeded():
    clean = np.full((64, 64, 1), 128, np.uint8)
    a = protocol_noisy_uint8(clean, 25, seed=7)
    assert a.dtype == np.uint8 and np.array_equal(a, protocol_noisy_uint8(clean, 25, seed=7))
    assert abs(a.astype(float).std() - 25) < 2
