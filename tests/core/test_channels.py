"""core/channels.py: how a model meets an image of another channel count (one place for the
Denoiser, the export's image check and the fast mode's probes)."""

import numpy as np
import pytest

from denoiser.core.channels import adapt_channels, is_gray
from denoiser.deploy.imagecheck import run_image

MIX = np.array([[0.2, 0.1, 0.0], [0.3, 0.5, 0.4], [0.0, 0.1, 0.8]], np.float32)
OFFSET = np.array([0.05, -0.02, 0.1], np.float32)


def colour_model(x: np.ndarray) -> np.ndarray:
    """Each output channel its own mix of the inputs plus its own offset: for a gray input the
    three outputs differ, so the mean and the first channel are told apart."""
    assert x.shape[1] == 3
    return np.einsum("oc,bchw->bohw", MIX, x) + OFFSET[None, :, None, None]


def gray_model(x: np.ndarray) -> np.ndarray:
    assert x.shape[1] == 1
    return x * 0.5 + 0.1


def test_gray_on_a_colour_model_is_the_mean_of_its_outputs_on_gray_rgb():
    x = np.random.default_rng(0).random((2, 1, 9, 11), dtype=np.float32)
    rgb_out = colour_model(np.repeat(x, 3, axis=1))
    got = adapt_channels(colour_model, 1, 3)(x)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, rgb_out.mean(axis=1, keepdims=True), rtol=1e-6)
    assert np.abs(got - rgb_out[:, :1]).mean() > 0.1  # not the first channel


def test_colour_on_a_gray_model_runs_each_channel_as_its_own_image():
    x = np.random.default_rng(1).random((2, 3, 5, 7), dtype=np.float32)
    got = adapt_channels(gray_model, 3, 1)(x)
    np.testing.assert_allclose(got, np.concatenate([gray_model(x[:, c:c + 1]) for c in range(3)], axis=1))


def test_same_channels_pass_through_and_others_are_refused():
    assert adapt_channels(colour_model, 3, 3) is colour_model
    with pytest.raises(ValueError, match="cannot run a 3-channel model on a 2-channel image"):
        adapt_channels(colour_model, 2, 3)


def test_the_export_check_adapts_channels_as_the_denoiser_does():
    noisy = np.random.default_rng(2).integers(0, 256, (13, 17, 1), dtype=np.uint8)
    x = noisy.transpose(2, 0, 1)[None].astype(np.float32) / 255
    want = np.clip(adapt_channels(colour_model, 1, 3)(x)[0], 0, 1).transpose(1, 2, 0)
    np.testing.assert_allclose(run_image(colour_model, noisy, 3), want, rtol=1e-6)


def test_gray_means_one_channel_or_three_equal_ones():
    g = np.random.default_rng(3).random((6, 5, 1), dtype=np.float32)
    assert is_gray(g) and is_gray(np.repeat(g, 3, axis=2))
    nearly = np.repeat(g, 3, axis=2)
    nearly[5, 4, 2] += 1e-3
    assert not is_gray(nearly) and not is_gray(np.zeros((2, 2, 2), np.float32))
