"""Procedural clean images: training and validation data that needs no files at all.

A run with no clean folders trains on these alone (and validates on them when it has nothing
better, which it says); `imagecheck` measures exported models on them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from denoiser.core.imageio import to_uint8


def dead_leaves(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural clean image: occluding discs and boxes with gradients and fine texture.

    Dead-leaves images share natural images' edge statistics (sharp occlusion boundaries,
    scale invariance), which is what a denoiser must learn to preserve.
    """
    img = np.empty((size, size, 3), np.float32)
    img[:] = rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(int(rng.integers(20, 60))):
        radius = size * 0.4 * rng.uniform(0.02, 1.0) ** 2.5  # many small shapes, few large ones
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        mask = np.zeros((size, size), np.uint8)
        if rng.random() < 0.6:
            cv2.circle(mask, (int(cx), int(cy)), max(1, int(radius)), 1, -1, lineType=cv2.LINE_AA)
        else:
            box = ((cx, cy), (2 * radius, 2 * radius * rng.uniform(0.3, 1.0)), rng.uniform(0, 180))
            cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 1)
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        gx, gy = rng.normal(0, 0.3, 2)
        stripes = rng.random() < 0.3  # stripes: fine texture the model must not smooth away
        if stripes:
            freq, phase = rng.uniform(5, 40), rng.uniform(0, 2 * np.pi)
        # Paint only the shape's bounding box: most shapes are small, and the whole-image
        # arithmetic made this source 2-3x slower (same pixels, same random draws).
        x0, y0, w, h = cv2.boundingRect(mask)
        if w == 0:  # entirely outside the image
            continue
        region = (slice(y0, y0 + h), slice(x0, x0 + w))
        xs, ys = xx[region], yy[region]
        shade = (gx * (xs - 0.5) + gy * (ys - 0.5))[..., None]
        if stripes:
            shade = shade + 0.15 * np.sin(freq * (xs * math.cos(phase) + ys * math.sin(phase)) * 2 * np.pi)[..., None]
        m = mask[region].astype(bool)
        img[region][m] = np.clip(colour + shade, 0, 1)[m]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img = np.clip(img, 0, 1)
    if channels == 1:
        img = img.mean(axis=2, keepdims=True)
    return to_uint8(img)
