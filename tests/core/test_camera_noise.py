"""The camera pipeline's noise has a camera's statistics, not just the right shapes."""


import numpy as np
import pytest
import torch
from conftest import DATA, gpu

from denoiser.core.config import NoiseConfig
from denoiser.core.imageio import read_image
from denoiser.core.noise.camera import (
    bayer_masks,
    demosaic,
    iso_to_noise,
    random_ccm,
    raw_noise,
)
from denoiser.core.noise.ops import synthesize
from denoiser.core.noise.stats import mean_stats, noise_stats


def _photos(size=160) -> torch.Tensor:
    """The shipped colour samples, top-left crops, as a (N, 3, size, size) batch in [0, 1]."""
    crops = [read_image(DATA / name)[0][:size, :size] for name in ("astronaut.png", "coffee.png")]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


def _noisy(clean: torch.Tensor, spec: str, seed: int) -> torch.Tensor:
    return synthesize(clean, NoiseConfig(spec=spec, quantize_prob=1.0), torch.Generator().manual_seed(seed))


def _stats(spec: str, draws: int = 6):
    clean = _photos()
    stats = []
    for seed in range(draws):
        noisy = _noisy(clean, spec, seed)
        stats += [noise_stats(n.permute(1, 2, 0).numpy(), c.permute(1, 2, 0).numpy()) for n, c in zip(noisy, clean)]
    return mean_stats(stats)


def test_raw_noise_variance_is_linear_in_intensity():
    level = torch.linspace(0, 1, 11).view(-1, 1, 1, 1).expand(11, 1, 128, 128)
    shot, read = torch.full((11,), 0.004), torch.full((11,), 2e-5)
    var = raw_noise(level, shot, read, torch.Generator().manual_seed(0)).double().var(dim=(1, 2, 3)).numpy()
    slope, intercept = np.polyfit(level[:, 0, 0, 0].numpy(), var, 1)
    assert abs(slope - 0.004) / 0.004 < 0.03 and abs(intercept - 2e-5) / 2e-5 < 0.3


def test_read_noise_follows_shot_noise_log_linearly_with_spread():
    iso = torch.exp(torch.linspace(np.log(100), np.log(12800), 4000))
    shot, read = iso_to_noise(iso, torch.Generator().manual_seed(0))
    assert torch.allclose(shot[-1] / shot[0], torch.tensor(128.0))  # shot noise linear in ISO
    slope, offset = np.polyfit(torch.log(shot).numpy(), torch.log(read).numpy(), 1)
    assert abs(slope - 2.18) < 0.05 and abs(offset - 1.20) < 0.3  # Brooks et al.'s fit
    residual = torch.log(read) - (2.18 * torch.log(shot) + 1.20)
    assert 0.2 < residual.std() < 0.3  # drawn around it, not on it


def test_colour_matrices_keep_white_and_invert():
    ccm = random_ccm(64, torch.Generator().manual_seed(0), "cpu")
    assert torch.allclose(ccm.sum(-1), torch.ones(64, 3), atol=1e-6)
    assert (ccm.diagonal(dim1=1, dim2=2) > 1.29).all() and torch.linalg.cond(ccm).max() < 20


def test_demosaicing_a_mosaic_of_a_smooth_image_gives_it_back():
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    rgb = torch.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.6 - 0.3 * x * y])[None].repeat(4, 1, 1, 1)
    phase = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    masks = bayer_masks(4, 32, 32, phase)
    assert torch.equal(masks.sum(1), torch.ones(4, 32, 32)) and masks[:, 1].mean() == 0.5  # RGGB: half green
    out = demosaic((rgb * masks).sum(1, keepdim=True), masks)
    assert (out - rgb)[..., 2:-2, 2:-2].abs().max() < 0.01


def test_camera_noise_is_correlated_like_a_cameras():
    """The ranges measured on real pairs (SIDD smartphones to DSLR benchmark sets): neighbouring
    pixels and the colour channels are correlated, chroma noise is coarser than luma noise."""
    s = _stats("camera:iso=1600-6400,quality=95")
    assert 0.3 <= s.luma_lag1 <= 0.7
    assert 0.24 <= s.rg_corr <= 0.68
    assert s.chroma_lag4 > 0.15
    white = _stats("gaussian:15")
    assert abs(white.luma_lag1) < 0.05 and abs(white.rg_corr) < 0.05


def test_chroma_noise_is_coarser_than_luma_noise():
    clean = _photos()
    n = (_noisy(clean, "camera:iso=3200,quality=95,chroma=2", 0) - clean).numpy() * 255
    luma = 0.299 * n[:, 0] + 0.587 * n[:, 1] + 0.114 * n[:, 2]
    chroma = n[:, 0] - n[:, 1]

    def lag4(a):
        return np.corrcoef(a[..., :-4].ravel(), a[..., 4:].ravel())[0, 1]

    assert lag4(chroma) > lag4(luma) + 0.1


def test_shadows_are_noisier_than_highlights():
    """Flat patches, no JPEG texture: the camera's tone curve amplifies dark noise; sRGB Poisson
    noise (the old chain's) does the opposite."""
    level = torch.tensor([0.2, 0.3, 0.75, 0.85]).view(-1, 1, 1, 1).expand(4, 3, 96, 96).repeat(8, 1, 1, 1)
    spec = "camera:iso=1600,quality=98,zoom=1"
    std = (_noisy(level, spec, 0) - level).reshape(8, 4, -1).std(-1).mean(0)
    assert std[2:].mean() / std[:2].mean() < 0.85
    old = (_noisy(level, "poisson-gaussian:shot=10,read=2", 0) - level).reshape(8, 4, -1).std(-1).mean(0)
    assert old[2:].mean() > old[:2].mean()


def test_noise_grows_with_iso_and_the_lowest_iso_is_within_jpeg_error():
    clean = _photos()
    err = [float(((_noisy(clean, f"camera:iso={iso},quality=90", 0) - clean) * 255).std()) for iso in (25, 400, 6400)]
    assert err[0] < err[1] < err[2]
    jpeg_only = float(((_noisy(clean, "jpeg:90", 0) - clean) * 255).std())
    assert err[0] < 1.25 * jpeg_only


@pytest.mark.parametrize("shape", [(2, 3, 37, 50), (3, 1, 40, 33)])
def test_camera_noise_takes_odd_sizes_and_gray_and_is_seeded(shape):
    clean = torch.rand(shape)
    a, b = _noisy(clean, "camera", 1), _noisy(clean, "camera", 1)
    assert a.shape == clean.shape and torch.equal(a, b) and not torch.equal(a, _noisy(clean, "camera", 2))
    assert torch.isfinite(a).all()


@gpu
def test_camera_noise_runs_on_the_gpu():
    clean = _photos().cuda()
    gen = torch.Generator("cuda").manual_seed(0)
    noisy = synthesize(clean, NoiseConfig(spec="camera", quantize_prob=0.0), gen)
    assert noisy.device.type == "cuda" and noisy.shape == clean.shape
