"""Denoise images of any size in bounded memory, without seams.

The image is cut into core tiles whose origins are multiples of the model's alignment (so
every tile sees the same down-sampling grid as the whole image would) and each tile is run
with a margin of at least the model's receptive field around it. Only the core of each
result is kept. Pixels of a core cannot see past the margin, so tiled and untiled outputs
agree up to float rounding: there is no seam to blend away.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]  # float32 (B, C, H, W) -> same shape


def round_up(x: int, multiple: int) -> int:
    return int(math.ceil(x / multiple) * multiple)


def tile_boxes(h: int, w: int, tile: int, margin: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Yield (core box, input box) pairs as (y0, y1, x0, x1), covering the image exactly once."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            core = (y0, min(y0 + tile, h), x0, min(x0 + tile, w))
            box = (max(0, y0 - margin), min(h, core[1] + margin), max(0, x0 - margin), min(w, core[3] + margin))
            yield core, box


def tile_for_budget(channels: int, width: int, budget_mb: float, margin: int, alignment: int) -> int:
    """Largest aligned core tile whose activations fit in `budget_mb`.

    A U-Net of base width w holds roughly 6*w float32 values per pixel at full resolution
    during a forward pass (features, skip copy, concat, block output); deeper levels add
    about a third more. Measured peak RSS is recorded in BENCHMARKS.md.
    """
    bytes_per_px = 4 * (8 * width + 4 * channels)
    side = int(math.sqrt(budget_mb * 2**20 / bytes_per_px)) - 2 * margin
    return max(alignment, side // alignment * alignment)


def denoise_tiled(run: Runner, image: np.ndarray, tile: int, margin: int, alignment: int,
                  batch: int = 4) -> np.ndarray:
    """Run `run` over (C, H, W) `image` tile by tile; tiles of equal shape go in batches."""
    c, h, w = image.shape
    tile = max(alignment, tile // alignment * alignment)
    margin = round_up(margin, alignment)
    if h <= tile and w <= tile:
        return run(image[None])[0]
    out = np.empty_like(image)
    pending: dict[tuple[int, int], list] = {}

    def flush(shape: tuple[int, int]) -> None:
        items = pending.pop(shape)
        results = run(np.stack([image[:, b[0]:b[1], b[2]:b[3]] for _, b in items]))
        for (core, box), res in zip(items, results):
            cy, cx = core[0] - box[0], core[2] - box[2]
            out[:, core[0]:core[1], core[2]:core[3]] = res[:, cy:cy + core[1] - core[0], cx:cx + core[3] - core[2]]

    for core, box in tile_boxes(h, w, tile, margin):
        shape = (box[1] - box[0], box[3] - box[2])
        pending.setdefault(shape, []).append((core, box))
        if len(pending[shape]) == batch:
            flush(shape)
    for shape in list(pending):
        flush(shape)
    return out
