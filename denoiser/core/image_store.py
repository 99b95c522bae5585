"""Training images as uint8, in memory within a byte budget, or read from disk past it.

Every file's size is read from its header first, so what a set of images will take is known
before anything is decoded: an image over the pixel limit, or (where reading from disk is not
allowed, as for uploads) a set over the budget, is refused with a message saying what to do,
without the memory ever being spent. A set within the budget is decoded once and held (a
quarter of what float32 would take); past it, `DiskImages` decodes an image when a crop needs
it and keeps a few, so a folder of any size trains in bounded memory, only slower.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from denoiser.core.imageio import ImageError, TooManyPixels, read_size, read_uint8

log = logging.getLogger(__name__)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as Pillow's RGB -> L
ROWS = 512  # luma in row blocks: no full-size float temporaries for large images
LISTED = 5  # files named in a message; the rest are counted


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) -> (H, W, channels): gray is replicated to RGB, RGB weighted to luma.

    Alpha never gets here: imageio splits it off, so RGBA sources train on their colour.
    uint8 stays uint8 (rounded luma); float stays float.
    """
    if arr.shape[2] == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=2)
    if arr.dtype != np.uint8:
        return (arr.astype(np.float32) @ LUMA)[..., None]  # a gray photo of the scene, not a channel mean
    out = np.empty((*arr.shape[:2], 1), np.uint8)
    for y in range(0, arr.shape[0], ROWS):
        out[y:y + ROWS, :, 0] = np.rint(np.clip(arr[y:y + ROWS].astype(np.float32) @ LUMA, 0, 255))
    return out


def read_training_image(path: str, channels: int, max_pixels: int) -> np.ndarray:
    return to_channels(read_uint8(path, max_pixels), channels)


class DiskImages(Sequence):
    """Images read from disk when indexed, the most recently used kept up to `cache_bytes`.

    Shapes come from the headers, so callers that only need sizes decode nothing.
    """

    def __init__(self, paths: list[str], shapes: list[tuple[int, int, int]], decode: Callable[[str], np.ndarray],
                 cache_bytes: int):
        self.paths, self.shapes, self.decode, self.cache_bytes = list(paths), list(shapes), decode, cache_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        arr = self.decode(self.paths[i])
        self._cache[i] = arr
        while len(self._cache) > 1 and sum(a.nbytes for a in self._cache.values()) > self.cache_bytes:
            self._cache.popitem(last=False)
        return arr

    def subset(self, keep: Sequence[bool]) -> "DiskImages":
        pick = [i for i, k in enumerate(keep) if k]
        return DiskImages([self.paths[i] for i in pick], [self.shapes[i] for i in pick], self.decode, self.cache_bytes)

    def __getstate__(self) -> dict:  # loader workers start with an empty cache of their own
        return {**self.__dict__, "_cache": OrderedDict()}


def take(images: Sequence[np.ndarray], keep: Sequence[bool]):
    """The images where `keep` is true, held as they were (in memory or on disk)."""
    if isinstance(images, DiskImages):
        return images.subset(keep)
    return [im for im, k in zip(images, keep) if k]


def shapes_of(images: Sequence[np.ndarray]) -> list[tuple[int, ...]]:
    return list(images.shapes) if isinstance(images, DiskImages) else [im.shape for im in images]


@dataclass(frozen=True)
class Limits:
    """What training may hold: pixels per image, decoded bytes in memory, and whether a set past
    the budget is read from disk (`lazy`) or refused (uploads: the server has no say in them)."""

    max_pixels: int
    memory_budget: int
    lazy: bool = True


@dataclass
class Probed:
    """Files whose headers read and whose sizes pass, with their (H, W, channels) shapes."""

    paths: list[str] = field(default_factory=list)
    shapes: list[tuple[int, int, int]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # "name: WxH"

    @property
    def nbytes(self) -> int:
        return sum(h * w * c for h, w, c in self.shapes)


def probe(paths: Sequence[Path], channels: int, max_pixels: int, shown: Callable[[Path], str] = str) -> Probed:
    """Read every header (nothing is decoded)."""
    out = Probed()
    for path in paths:
        try:
            h, w = read_size(path, max_pixels)
        except TooManyPixels as e:
            out.too_large.append(f"{shown(path)} ({e})")
            continue
        except ImageError:
            out.unreadable.append(shown(path))
            continue
        out.paths.append(str(path))
        out.shapes.append((h, w, channels))
    return out


def refuse_too_large(found: Probed, limits: Limits) -> None:
    if not found.too_large:
        return
    listed = "; ".join(found.too_large[:LISTED]) + (f"; and {len(found.too_large) - LISTED} more"
                                                   if len(found.too_large) > LISTED else "")
    raise ValueError(f"{len(found.too_large)} training image(s) over {limits.max_pixels / 1e6:g} MP, the limit "
                     f"per image: {listed}. Downscale them{_where_else(limits)}")


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def over_budget(nbytes: int, what: str, limits: Limits) -> str:
    return f"{what} decode to {_size(nbytes)}, over the {_size(limits.memory_budget)} that training holds in memory"


def _where_else(limits: Limits) -> str:
    if limits.lazy:
        return " (or raise the limit: --max-pixels)"
    return (", or train from a folder on the server (under its --data-root), whose images are read from disk "
            "as training goes")


def check_budget(nbytes: int, what: str, limits: Limits) -> bool:
    """True if images of `nbytes` are to be read from disk; ValueError if they may not be."""
    if nbytes <= limits.memory_budget:
        return False
    if not limits.lazy:
        raise ValueError(f"{over_budget(nbytes, what, limits)}: downscale them or use fewer{_where_else(limits)}")
    log.warning("%s: reading them from disk as training goes (slower); downscale them, or raise --data-memory "
                "to hold them in memory", over_budget(nbytes, what, limits))
    return True


def load(found: Probed, channels: int, limits: Limits, lazy: bool) -> tuple[Sequence[np.ndarray], list[int], list[str]]:
    """(images, indices into `found` of the ones that decode, names of those that do not).

    Every file is decoded once either way, one at a time, so a broken file is reported before
    training rather than in the middle of it; read from disk, only its shape is kept.
    """
    decode = functools.partial(read_training_image, channels=channels, max_pixels=limits.max_pixels)
    images: list[np.ndarray] = []
    good, broken = [], []
    for i, path in enumerate(found.paths):
        try:
            arr = decode(path)
        except ImageError:
            broken.append(path)
            continue
        good.append(i)
        if not lazy:
            images.append(arr)
        del arr
    if lazy:
        return (DiskImages([found.paths[i] for i in good], [found.shapes[i] for i in good], decode,
                           limits.memory_budget // 4), good, broken)
    return images, good, broken
