"""Clean-image sources, paired folders, and the loaders that feed training.

The loader delivers *clean* crops (or aligned noisy/clean crops from paired folders); the
synthetic noise is added later on the training device (noise.py). Every crop is a pure
function of (seed, index): the same seed gives the same data, different indices (hence
different loader workers and DDP ranks) give different crops, and resuming at step k just
starts the index stream at k * batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .config import DataConfig
from .imageio import ImageError, is_image_path, read_image, to_uint8


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and is_image_path(p) and not p.name.startswith("."))


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) -> (H, W, channels): gray is replicated to RGB, RGB averaged to gray."""
    if arr.shape[2] == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=2)
    return arr.mean(axis=2, keepdims=True, dtype=np.float32)


@dataclass
class CleanImages:
    """Decoded clean images kept in memory as uint8 (Train400 + CBSD432 is about 80 MB)."""

    images: list[np.ndarray]
    names: list[str]
    skipped_small: int = 0
    skipped_unreadable: int = 0


def load_clean_images(dirs: tuple[str, ...], channels: int, min_size: int) -> CleanImages:
    out = CleanImages([], [])
    for d in dirs:
        for path in list_images(d):
            try:
                arr, _ = read_image(path)
            except ImageError:
                out.skipped_unreadable += 1
                continue
            if min(arr.shape[:2]) < min_size:
                out.skipped_small += 1
                continue
            out.images.append(to_uint8(to_channels(arr, channels)))
            out.names.append(str(path))
    return out


def split_holdout(images: CleanImages, fraction: float = 0.05) -> tuple[CleanImages, CleanImages]:
    """Hold out every k-th image (by sorted name) for validation, so it is never trained on."""
    n = len(images.images)
    if n < 10:
        return images, CleanImages([], [])
    k = max(2, round(1 / fraction))
    train = CleanImages([im for i, im in enumerate(images.images) if i % k != k - 1],
                        [nm for i, nm in enumerate(images.names) if i % k != k - 1])
    val = CleanImages([im for i, im in enumerate(images.images) if i % k == k - 1],
                      [nm for i, nm in enumerate(images.names) if i % k == k - 1])
    return train, val


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
        shade = (gx * (xx - 0.5) + gy * (yy - 0.5))[..., None]
        if rng.random() < 0.3:  # stripes: fine texture the model must not smooth away
            freq, phase = rng.uniform(5, 40), rng.uniform(0, 2 * np.pi)
            shade = shade + 0.15 * np.sin(freq * (xx * math.cos(phase) + yy * math.sin(phase)) * 2 * np.pi)[..., None]
        m = mask.astype(bool)
        img[m] = np.clip(colour + shade, 0, 1)[m]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img = np.clip(img, 0, 1)
    if channels == 1:
        img = img.mean(axis=2, keepdims=True)
    return to_uint8(img)


def augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip / 90-degree rotation for every array (pairs stay aligned)."""
    k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(0, 1))
        out.append(a[:, ::-1] if flip else a)
    return out


def random_crop(arrays: list[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = arrays[0].shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return [a[y:y + size, x:x + size] for a in arrays]


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr).transpose(2, 0, 1).astype(np.float32) / 255.0)


class CleanCrops(Dataset):
    """Random clean crops from in-memory images and/or the procedural source.

    Indexable by any integer: item i is determined by (seed, i). `len` is nominal.
    """

    def __init__(self, images: CleanImages, crop: int, channels: int, procedural_weight: float, seed: int):
        if not images.images and procedural_weight <= 0:
            raise ValueError("no clean images and the procedural source is off: nothing to train on")
        self.images, self.crop, self.channels, self.seed = images, crop, channels, seed
        self.procedural_weight = 1.0 if not images.images else procedural_weight

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        if rng.random() < self.procedural_weight:
            arr = dead_leaves(self.crop, self.channels, rng)
        else:
            img = self.images.images[int(rng.integers(0, len(self.images.images)))]
            (arr,) = random_crop([img], self.crop, rng)
        (arr,) = augment([arr], rng)
        return to_tensor(arr)


class PairedFolder(Dataset):
    """noisy/ and clean/ folders matched by file stem (case-insensitive, any extension).

    Every problem (unmatched names on either side, size mismatches, unreadable files) is
    collected and raised at once, before any training starts.
    """

    def __init__(self, noisy_dir: str | Path, clean_dir: str | Path, crop: int, channels: int, seed: int):
        self.crop, self.seed = crop, seed
        noisy = {p.stem.lower(): p for p in list_images(noisy_dir)}
        clean = {p.stem.lower(): p for p in list_images(clean_dir)}
        problems = [f"no clean match for {noisy[s].name}" for s in sorted(noisy.keys() - clean.keys())]
        problems += [f"no noisy match for {clean[s].name}" for s in sorted(clean.keys() - noisy.keys())]
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.names: list[str] = []
        for stem in sorted(noisy.keys() & clean.keys()):
            try:
                n_arr, _ = read_image(noisy[stem])
                c_arr, _ = read_image(clean[stem])
            except ImageError as e:
                problems.append(f"unreadable pair {stem}: {e}")
                continue
            if n_arr.shape[:2] != c_arr.shape[:2]:
                problems.append(f"size mismatch for {stem}: noisy {n_arr.shape[1]}x{n_arr.shape[0]}, "
                                f"clean {c_arr.shape[1]}x{c_arr.shape[0]}")
                continue
            if min(c_arr.shape[:2]) < crop:
                problems.append(f"{stem} is smaller than the {crop}px crop")
                continue
            self.pairs.append((to_uint8(to_channels(n_arr, channels)), to_uint8(to_channels(c_arr, channels))))
            self.names.append(stem)
        if not noisy and not clean:
            problems.append("both folders hold no images")
        if problems:
            raise ValueError(f"{len(problems)} problem(s) with paired folders {noisy_dir} / {clean_dir}:\n  "
                             + "\n  ".join(problems))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        noisy, clean = self.pairs[int(rng.integers(0, len(self.pairs)))]
        noisy, clean = augment(random_crop([noisy, clean], self.crop, rng), rng)
        return to_tensor(noisy), to_tensor(clean)


class IndexStream(torch.utils.data.Sampler):
    """Indices start, start + stride, ...: resumable and shardable across DDP ranks."""

    def __init__(self, start: int, count: int, rank: int = 0, world: int = 1):
        self.start, self.count, self.rank, self.world = start, count, rank, world

    def __iter__(self):
        return iter(range(self.start * self.world + self.rank, (self.start + self.count) * self.world, self.world))

    def __len__(self) -> int:
        return self.count


def make_loader(dataset: Dataset, cfg: DataConfig, first_sample: int, samples: int,
                rank: int = 0, world: int = 1) -> DataLoader:
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=IndexStream(first_sample, samples, rank, world),
                      num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available(), drop_last=True,
                      persistent_workers=False)


def build_training_data(cfg: DataConfig, seed: int) -> tuple[Dataset, CleanImages | None]:
    """The training dataset and the held-out clean images for validation (if any)."""
    if cfg.pairs:
        return PairedFolder(cfg.pairs[0], cfg.pairs[1], cfg.crop, cfg.channels, seed), None
    images = load_clean_images(cfg.clean_dirs, cfg.channels, cfg.crop)
    if cfg.clean_dirs and not images.images and not cfg.procedural:
        raise ValueError(f"no usable images in {', '.join(cfg.clean_dirs)} "
                         f"({images.skipped_small} smaller than the crop, {images.skipped_unreadable} unreadable)")
    train, val = split_holdout(images)
    weight = cfg.procedural_weight if cfg.procedural else 0.0
    return CleanCrops(train, cfg.crop, cfg.channels, weight, seed), val
