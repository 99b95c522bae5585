"""Denoise images of any size in bounded memory, without seams.

The image is cut into core tiles whose origins are multiples of the model's alignment (so
every tile sees the same down-sampling grid as the whole image would) and each tile is run
with a margin of at least the model's receptive field around it. Only the core of each
result is kept. Pixels of a core cannot see past the margin, so tiled and untiled outputs
agree up to float rounding: there is no seam to blend away, by construction (tested).

Memory: one backend call holds `batch` tiles of (tile + 2 * margin)^2 pixels, and
`plan_tiles` picks the tile side (and how many tiles go in one call) from a budget in MB.
Images are (H, W, C) float32 arrays here; tiles go to the runner channels-first.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]  # float32 (B, C, H, W) -> same shape
Progress = Callable[[int, int], None]  # (tiles done, tiles in all)
MAX_BATCH = 8  # more tiles per call gains nothing measurable and delays the first output


def round_up(x: int, multiple: int) -> int:
    return int(math.ceil(x / multiple) * multiple)


def plan_tiles(budget_mb: float, bytes_per_pixel: float, margin: int, alignment: int,
               tile: int | None = None) -> tuple[int, int]:
    """(tile side, tiles per backend call) so that one call fits in `budget_mb`.

    Without a given tile the side is the largest that fits (fewest margins to recompute);
    the batch is then how many such tiles fit in the budget, at least one. The model says
    `bytes_per_pixel` (its `activation_bytes_per_pixel()`, recorded in its exports).
    """
    margin = round_up(margin, alignment)
    budget_px = budget_mb * 2**20 / bytes_per_pixel
    if tile is None:
        tile = int(math.sqrt(budget_px)) - 2 * margin
    tile = max(alignment, tile // alignment * alignment)
    batch = int(budget_px // (tile + 2 * margin) ** 2)
    return tile, max(1, min(MAX_BATCH, batch))


def balanced(size: int, tile: int, alignment: int) -> int:
    """The aligned tile side <= `tile` that cuts `size` into the fewest, most equal parts.

    A 1000-pixel side with tile 904 becomes two 504s, not 904 + 96: less margin to recompute
    in the thin last tile, and more tiles of one shape to batch.
    """
    parts = math.ceil(size / tile)
    return min(tile, round_up(math.ceil(size / parts), alignment))


def tile_boxes(h: int, w: int, tile: int, margin: int, tile_w: int | None = None
               ) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Yield (core box, input box) pairs as (y0, y1, x0, x1), covering the image exactly once."""
    tile_w = tile_w or tile
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile_w):
            core = (y0, min(y0 + tile, h), x0, min(x0 + tile_w, w))
            box = (max(0, y0 - margin), min(h, core[1] + margin), max(0, x0 - margin), min(w, core[3] + margin))
            yield core, box


def denoise_tiled(run: Runner, image: np.ndarray, tile: int, margin: int, alignment: int,
                  batch: int = 1, max_side: int | None = None, progress: Progress | None = None) -> np.ndarray:
    """Run `run` over (H, W, C) `image` tile by tile into a new (H, W, C) array.

    An image no bigger (in pixels) than one full call runs whole, unless a side is over
    `max_side` (a TensorRT profile's limit). Otherwise tiles are cut from the image as they
    are needed (no channels-first copy of it), and tiles of equal shape go `batch` at a time.
    A tiled image calls `progress(done, total)` once before the first tile and after each call.
    """
    h, w, _ = image.shape
    tile = max(alignment, tile // alignment * alignment)
    margin = round_up(margin, alignment)
    fits = h * w <= batch * (tile + 2 * margin) ** 2 and max(h, w) <= (max_side or max(h, w))
    if h <= tile and w <= tile or fits:
        return np.ascontiguousarray(run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0))
    out = np.empty_like(image)
    pending: dict[tuple[int, int], list] = {}
    tile_h, tile_w = balanced(h, tile, alignment), balanced(w, tile, alignment)
    total, done = math.ceil(h / tile_h) * math.ceil(w / tile_w), 0
    if progress:
        progress(0, total)

    def flush(shape: tuple[int, int]) -> None:
        nonlocal done
        items = pending.pop(shape)
        x = np.stack([image[b[0]:b[1], b[2]:b[3]].transpose(2, 0, 1) for _, b in items])
        for (core, box), res in zip(items, run(x)):
            cy, cx = core[0] - box[0], core[2] - box[2]
            out[core[0]:core[1], core[2]:core[3]] = res[:, cy:cy + core[1] - core[0],
                                                        cx:cx + core[3] - core[2]].transpose(1, 2, 0)
        done += len(items)
        if progress:
            progress(done, total)

    for core, box in tile_boxes(h, w, tile_h, margin, tile_w):
        shape = (box[1] - box[0], box[3] - box[2])
        pending.setdefault(shape, []).append((core, box))
        if len(pending[shape]) >= batch:
            flush(shape)
    for shape in list(pending):
        flush(shape)
    return out
