"""PSNR and SSIM against scikit-image's reference implementations, on the sample images with
real Gaussian noise, gray and colour, one image at a time and in a batch.

Tolerances: our metrics compute in float32 (training and validation tensors are float32),
scikit-image in float64. Run in float64, our SSIM matches scikit-image to ~1e-14, so what is
left is float32 rounding. SSIM's variances are E[x^2] - E[x]^2 of values near 1, a difference
that loses ~1e-7 absolute; it matters where a window's variance is small next to C2 = 9e-4
(flat regions with little noise: camera.png at sigma 0.5 moved by 4e-5). With sigma >= 10 every
window's variance is above ~1.5e-3, and over these images the mean moved at most 6e-6. So
SSIM_TOL = 2e-5: about 3x that, and still below each near-miss one could write, measured on
these same cases: comparing only the first channel differs by >= 5e-5, the sample covariance
(N - 1) by >= 1.4e-4, a 7x7 uniform window by >= 6e-3, a sigma-1.0 window by >= 1.9e-2, data
range 2 by >= 4.7e-2. PSNR's float32 mean of squares is off by ~1e-6 relative (~5e-6 dB):
PSNR_TOL = 1e-4 dB.
"""

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from denoiser.core.metrics import psnr, ssim

metrics = pytest.importorskip("skimage.metrics", reason="needs scikit-image (dev extra)")

SSIM_TOL = 2e-5
PSNR_TOL = 1e-4  # dB
IMAGES = ["camera.png", "astronaut.png", "coffee.png"]  # gray (L), colour, colour of another size
SIGMAS = [10, 25, 50]  # on the 0-255 scale


def load(name: str) -> np.ndarray:
    """(H, W) or (H, W, 3) float64 in [0, 1]."""
    return np.asarray(Image.open(DATA / name), dtype=np.float64) / 255


def noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)


def tensor(*images: np.ndarray) -> torch.Tensor:
    """(B, C, H, W) float32, as the training and validation code hands them to the metrics."""
    return torch.stack([torch.from_numpy(a if a.ndim == 3 else a[..., None]).permute(2, 0, 1) for a in images]).float()


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM as scikit-image documents it for the paper's settings."""
    return metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1, channel_axis=-1 if x.ndim == 3 else None)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_ssim_matches_scikit_image(name, sigma):
    clean = load(name)
    dirty = noisy(clean, sigma)
    ours = ssim(tensor(clean), tensor(dirty))
    assert ours.shape == (1,)
    assert ours.item() == pytest.approx(reference_ssim(clean, dirty), abs=SSIM_TOL)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_psnr_matches_scikit_image(name, sigma):
    clean = load(name)
    dirty = noisy(clean, sigma)
    expected = metrics.peak_signal_noise_ratio(clean, dirty, data_range=1)
    assert psnr(tensor(clean), tensor(dirty)).item() == pytest.approx(expected, abs=PSNR_TOL)


def test_batch_gives_each_image_its_own_value():
    """Per-image values, not one over the batch: a batch of two noise levels gives both."""
    clean = load("astronaut.png")
    light, heavy = noisy(clean, 10, seed=1), noisy(clean, 50, seed=2)
    got_ssim = ssim(tensor(clean, clean), tensor(light, heavy))
    got_psnr = psnr(tensor(clean, clean), tensor(light, heavy))
    for k, dirty in enumerate([light, heavy]):
        assert got_ssim[k].item() == pytest.approx(reference_ssim(clean, dirty), abs=SSIM_TOL)
        assert got_psnr[k].item() == pytest.approx(metrics.peak_signal_noise_ratio(clean, dirty, data_range=1),
                                                   abs=PSNR_TOL)
    assert got_ssim[0] > got_ssim[1] and got_psnr[0] > got_psnr[1]


def test_the_noisy_sample_scores_as_scikit_image_says():
    """The shipped noisy astronaut (sigma 25, 8-bit) against its clean image: real data, no synthesis."""
    clean, dirty = load("astronaut.png"), load("noisy_astronaut.png")
    assert ssim(tensor(clean), tensor(dirty)).item() == pytest.approx(reference_ssim(clean, dirty), abs=SSIM_TOL)
    assert psnr(tensor(clean), tensor(dirty)).item() == pytest.approx(
        metrics.peak_signal_noise_ratio(clean, dirty, data_range=1), abs=PSNR_TOL)


def test_identical_images():
    x = tensor(load("coffee.png"))
    assert psnr(x, x).item() == float("inf")
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_peak_scales_with_the_value_range():
    """On the 0-255 scale with peak=255 the metrics equal those on [0, 1] with peak 1."""
    clean = load("camera.png")
    dirty = noisy(clean, 25)
    x, y = tensor(clean), tensor(dirty)
    assert psnr(x * 255, y * 255, peak=255).item() == pytest.approx(psnr(x, y).item(), abs=PSNR_TOL)
    assert ssim(x * 255, y * 255, peak=255).item() == pytest.approx(ssim(x, y).item(), abs=SSIM_TOL)
