"""Run a model on an image of another channel count: gray on a colour model, colour on a gray one.

Runners take and give float32 NCHW numpy batches. The two adaptations, the same everywhere a
model meets an image (the Denoiser, the export's quality check, the fast mode's reach probes):

  gray image, colour model: the gray channel repeated to RGB (a gray RGB image), and the
      output's channel MEAN back to one channel. A colour model's three outputs for a gray
      input differ a little; the mean is its best gray estimate (its noise, independent per
      channel, averages down) and treats the channels alike.
  colour image, gray model: each channel denoised as a gray image of its own, all in one batch.

Also what "gray" means for an image: 1 channel, or 3 identical ones (scans and black-and-white
photos are often saved as RGB).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]  # float32 (B, C, H, W) -> same shape


def adapt_channels(run: Runner, image_channels: int, model_channels: int) -> Runner:
    """`run` (a `model_channels` model) as a runner of `image_channels`-channel batches."""
    if image_channels == model_channels:
        return run
    if image_channels == 1 and model_channels == 3:
        return lambda x: run(np.repeat(x, 3, axis=1)).mean(axis=1, keepdims=True)
    if model_channels == 1:
        return lambda x: run(x.reshape(-1, 1, *x.shape[2:])).reshape(x.shape)
    raise ValueError(f"cannot run a {model_channels}-channel model on a {image_channels}-channel image")


def is_gray(arr: np.ndarray) -> bool:
    """(H, W, C): 1 channel, or 3 channels equal everywhere (compared a row band at a time: no
    full-size temporaries)."""
    if arr.shape[2] == 1:
        return True
    if arr.shape[2] != 3:
        return False
    band = max(1, (1 << 20) // max(1, arr.shape[1]))
    for y in range(0, arr.shape[0], band):
        rows = arr[y:y + band]
        if not (np.array_equal(rows[..., 0], rows[..., 1]) and np.array_equal(rows[..., 1], rows[..., 2])):
            return False
    return True
