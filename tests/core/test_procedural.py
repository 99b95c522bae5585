"""Procedural clean images (dead leaves): seeded, and with natural images' edge statistics."""

import numpy as np

from denoiser.core.procedural import dead_leaves


def test_dead_leaves_is_deterministic_and_varied():
    a = dead_leaves(64, 3, np.random.default_rng(1))
    b = dead_leaves(64, 3, np.random.default_rng(1))
    c = dead_leaves(64, 3, np.random.default_rng(2))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 10  # not a flat image
    assert dead_leaves(32, 1, np.random.default_rng(0)).shape == (32, 32, 1)


def test_dead_leaves_has_edges_gradients_and_texture_at_many_scales():
    img = dead_leaves(128, 1, np.random.default_rng(4))[..., 0].astype(float)
    gy, gx = np.gradient(img)
    grad = np.hypot(gx, gy)
    assert (grad > 40).mean() > 0.005  # sharp occlusion edges
    assert 0.2 < (grad < 1).mean() < 0.95  # and smooth regions between them
    assert len(np.unique(img)) > 64  # gradients and texture, not flat paint
