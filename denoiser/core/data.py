"""Clean-image sources, paired folders, and the loaders that feed training (procedural images
come from `procedural`).

The loader delivers *clean* crops (or aligned noisy/clean crops from paired folders); the
synthetic noise is added later on the training device (core/noise). Every crop is a pure
function of (seed, index): the same seed gives the same data, different indices (hence
different loader workers and DDP ranks) give different crops, and resuming at step k just
starts the index stream at k * batch.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from denoiser.core.config import DataConfig

# LUMA and to_channels live in image_store and are imported from here too
from denoiser.core.image_store import (  # noqa: F401
    LUMA,
    Limits,
    Probed,
    check_budget,
    load,
    probe,
    refuse_too_large,
    shapes_of,
    take,
    to_channels,
)
from denoiser.core.imageio import (
    ImageError,
    TooManyPixels,
    is_image_path,
    read_size,
)
from denoiser.core.procedural import dead_leaves

log = logging.getLogger(__name__)


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and is_image_path(p) and not p.name.startswith("."))


def limits_of(cfg: DataConfig) -> Limits:
    return Limits(cfg.max_image_pixels, cfg.memory_budget, cfg.read_past_budget)


@dataclass
class CleanImages:
    """Clean images as uint8, decoded in memory (Train400 + CBSD432 is about 80 MB) or, past the
    memory budget, read from disk as needed (`image_store.DiskImages`)."""

    images: Sequence[np.ndarray]
    names: list[str]
    skipped_small: int = 0
    skipped_unreadable: int = 0
    source: list[int] = field(default_factory=list)  # per image: index of the folder it came from

    def subset(self, keep: list[bool]) -> "CleanImages":
        src = self.source or [0] * len(self.images)
        return CleanImages(take(self.images, keep), [nm for nm, k in zip(self.names, keep) if k],
                           self.skipped_small, self.skipped_unreadable, [s for s, k in zip(src, keep) if k])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return shapes_of(self.images)


def load_clean_images(dirs: tuple[str, ...], channels: int, min_size: int, limits: Limits | None = None) -> CleanImages:
    """Every image under each folder (recursive), as uint8 with `channels` channels.

    Images smaller than `min_size` (the crop) and unreadable files are skipped, counted, and
    reported as a warning; they never stop training. Images over the pixel limit stop it, and
    a set over the memory budget is read from disk or refused (`image_store`).
    """
    limits = limits or limits_of(DataConfig())
    found, source, small = Probed(), [], [0] * len(dirs)
    unreadable = [0] * len(dirs)
    for index, d in enumerate(dirs):
        got = probe(list_images(d), channels, limits.max_pixels, lambda p, d=d: _rel(p, d))
        keep = [min(shape[:2]) >= min_size for shape in got.shapes]
        small[index], unreadable[index] = keep.count(False), len(got.unreadable)
        found.paths += take(got.paths, keep)
        found.shapes += take(got.shapes, keep)
        found.too_large += got.too_large
        source += [index] * sum(keep)
    refuse_too_large(found, limits)
    lazy = check_budget(found.nbytes, f"the {len(found.paths)} clean images", limits)
    images, good, broken = load(found, channels, limits, lazy)
    for i in set(range(len(found.paths))) - set(good):
        unreadable[source[i]] += 1
    out = CleanImages(images, [found.paths[i] for i in good], sum(small), sum(unreadable), [source[i] for i in good])
    for index, d in enumerate(dirs):
        if small[index] or unreadable[index]:
            log.warning("%s: skipped %d image(s) smaller than %d px and %d unreadable file(s)",
                        d, small[index], min_size, unreadable[index])
    return out


def split_holdout(images: CleanImages, fraction: float = 0.05) -> tuple[CleanImages, CleanImages]:
    """Hold out every k-th image (by sorted name) for validation, so it is never trained on."""
    n = len(images.images)
    if n < 10 or fraction <= 0:
        return images, CleanImages([], [])
    k = max(2, round(1 / fraction))
    held = [i % k == k - 1 for i in range(n)]
    return images.subset([not h for h in held]), images.subset(held)


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

    Indexable by any integer: item i is determined by (seed, i). `len` is nominal. A share
    `procedural_weight` of the crops is procedural; the rest come from the images, each equally
    likely, or, given `source_weights` (one per folder in `images.source`), from a folder drawn
    with those weights and then an image of it, so a small folder can count as much as a big one.
    """

    def __init__(self, images: CleanImages, crop: int, channels: int, procedural_weight: float, seed: int,
                 source_weights: tuple[float, ...] = ()):
        if not images.images and procedural_weight <= 0:
            raise ValueError("no clean images and the procedural source is off: nothing to train on")
        self.images, self.crop, self.channels, self.seed = images, crop, channels, seed
        self.procedural_weight = 1.0 if not images.images else procedural_weight
        self.groups: list[np.ndarray] = []
        self.group_p: np.ndarray | None = None
        if source_weights and images.images:
            if any(w < 0 for w in source_weights) or sum(source_weights) <= 0:
                raise ValueError(f"source weights must be >= 0 with a positive sum, got {list(source_weights)}")
            source = np.asarray(images.source)
            for k, w in enumerate(source_weights):
                if w > 0 and not (source == k).any():
                    raise ValueError(f"clean source #{k + 1} has weight {w:g} but no usable images")
            self.groups = [np.flatnonzero(source == k) for k, w in enumerate(source_weights) if w > 0]
            w = np.array([w for w in source_weights if w > 0], np.float64)
            self.group_p = w / w.sum()

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        if rng.random() < self.procedural_weight:
            arr = dead_leaves(self.crop, self.channels, rng)
        else:
            if self.group_p is None:
                i = int(rng.integers(0, len(self.images.images)))
            else:
                group = self.groups[int(rng.choice(len(self.groups), p=self.group_p))]
                i = int(group[rng.integers(0, len(group))])
            (arr,) = random_crop([self.images.images[i]], self.crop, rng)
        (arr,) = augment([arr], rng)
        return to_tensor(arr)


class PairedFolder(Dataset):
    """noisy/ and clean/ folders matched by file stem (case-insensitive, any extension).

    Files in subfolders match by their relative path (noisy/a/x.JPG with clean/a/x.png). Every
    problem (unmatched names on either side, two files with one stem, size mismatches,
    unreadable files, missing folders) is collected and raised at once, before any training
    starts. Crops, flips and rotations are drawn once per item and applied to both halves.
    """

    def __init__(self, noisy_dir: str | Path, clean_dir: str | Path, crop: int, channels: int, seed: int,
                 limits: Limits | None = None):
        self.crop, self.seed = crop, seed
        limits = limits or limits_of(DataConfig())
        problems: list[str] = []
        noisy = _by_stem(Path(noisy_dir), "noisy", problems)
        clean = _by_stem(Path(clean_dir), "clean", problems)
        problems += [f"no clean match for {_rel(noisy[s], noisy_dir)}" for s in sorted(noisy.keys() - clean.keys())]
        problems += [f"no noisy match for {_rel(clean[s], clean_dir)}" for s in sorted(clean.keys() - noisy.keys())]
        sides = (Probed(), Probed())  # noisy, clean
        self.names: list[str] = []
        for stem in sorted(noisy.keys() & clean.keys()):
            sizes = _pair_sizes(stem, ((noisy[stem], noisy_dir), (clean[stem], clean_dir)), crop, limits,
                                problems, sides[0].too_large)
            if sizes:
                for side, path, size in zip(sides, (noisy[stem], clean[stem]), sizes):
                    side.paths.append(str(path))
                    side.shapes.append((*size, channels))
                self.names.append(stem)
        if not noisy and not clean:
            problems.append("both folders hold no images")
        refuse_too_large(sides[0], limits)
        lazy = check_budget(sides[0].nbytes + sides[1].nbytes, f"the {len(self.names)} pairs", limits)
        (self.noisy, good_n, _), (self.clean, good_c, _) = (load(side, channels, limits, lazy) for side in sides)
        good = set(good_n) & set(good_c)
        problems += [f"unreadable pair {stem}" for i, stem in enumerate(self.names) if i not in good]
        if problems:
            raise ValueError(f"{len(problems)} problem(s) with paired folders {noisy_dir} / {clean_dir}:\n  "
                             + "\n  ".join(problems))

    def __len__(self) -> int:
        return len(self.names)

    def split_holdout(self, fraction: float) -> tuple["PairedFolder", "PairedFolder"]:
        """(train, validation): every k-th pair by name is held out, never trained on; of two
        pairs or more at least one, so validation measures the noise that training learns."""
        n = len(self.names)
        k = min(max(2, round(1 / fraction)), n) if fraction > 0 and n >= 2 else 0
        pick = [bool(k) and i % k == k - 1 for i in range(n)]
        train, val = copy.copy(self), copy.copy(self)
        for part, keep in ((train, [not v for v in pick]), (val, pick)):
            part.noisy, part.clean = take(self.noisy, keep), take(self.clean, keep)
            part.names = [name for name, k_ in zip(self.names, keep) if k_]
        return train, val

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        i = int(rng.integers(0, len(self.names)))
        noisy, clean = augment(random_crop([self.noisy[i], self.clean[i]], self.crop, rng), rng)
        return to_tensor(noisy), to_tensor(clean)


def _pair_sizes(stem: str, files, crop: int, limits: Limits, problems: list[str],
                too_large: list[str]) -> list[tuple[int, int]] | None:
    """Both halves' (H, W) from their headers, or None with the problem noted."""
    sizes, errors = [], []
    for side, (path, root) in zip(("noisy", "clean"), files):
        try:
            sizes.append(read_size(path, limits.max_pixels))
        except TooManyPixels as e:
            too_large.append(f"{side} {_rel(path, root)} ({e})")
        except ImageError as e:
            errors.append(f"{side} {_rel(path, root)}: {e}")
    if errors:
        problems.append(f"unreadable pair {stem}: " + "; ".join(errors))
    if len(sizes) < 2:
        return None
    (nh, nw), (ch, cw) = sizes
    if (nh, nw) != (ch, cw):
        problems.append(f"size mismatch for {stem}: noisy {nw}x{nh}, clean {cw}x{ch}")
    elif min(ch, cw) < crop:
        problems.append(f"{stem} is smaller than the {crop}px crop")
    else:
        return sizes
    return None


class MixedPairs(Dataset):
    """Paired crops mixed with synthetic ones: items are (noisy, clean, is_paired).

    For synthetic items `noisy` is a copy of `clean`; the trainer replaces it with noise
    synthesized on the device, where `is_paired` is False.
    """

    def __init__(self, pairs: PairedFolder, synthetic: CleanCrops, pairs_weight: float, seed: int):
        self.pairs, self.synthetic, self.pairs_weight, self.seed = pairs, synthetic, pairs_weight, seed
        self.images = synthetic.images  # what an epoch of the synthetic part covers

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if np.random.default_rng([self.seed, index, 1]).random() < self.pairs_weight:
            noisy, clean = self.pairs[index]
            return noisy, clean, torch.tensor(True)
        clean = self.synthetic[index]
        return clean, clean, torch.tensor(False)


def _by_stem(folder: Path, side: str, problems: list[str]) -> dict[str, Path]:
    """Files keyed by relative path without extension, lower-cased; clashes become problems."""
    if not folder.is_dir():
        problems.append(f"{side} folder not found: {folder}")
        return {}
    out: dict[str, Path] = {}
    for path in list_images(folder):
        key = path.relative_to(folder).with_suffix("").as_posix().lower()
        if key in out:
            problems.append(f"two {side} files match the name {key}: {_rel(out[key], folder)}, {_rel(path, folder)}")
        else:
            out[key] = path
    return out


def _rel(path: Path, root: str | Path) -> str:
    return path.relative_to(root).as_posix()


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


def check_image_sizes(cfg: DataConfig) -> None:
    """From the headers alone, refuse what loading `cfg`'s folders would refuse for size (an image
    over the pixel limit; with `read_past_budget` off, a set over the memory budget)."""
    limits = limits_of(cfg)
    found = Probed()
    for folder in (*cfg.clean_dirs, *(cfg.pairs or ())):
        got = probe(list_images(folder), cfg.channels, limits.max_pixels, lambda p: _rel(p, folder))
        found.too_large += got.too_large
        found.shapes += got.shapes
    refuse_too_large(found, limits)
    if not limits.lazy:
        check_budget(found.nbytes, f"the {len(found.shapes)} training images", limits)


def build_training_data(cfg: DataConfig, seed: int) -> tuple[Dataset, CleanImages | None]:
    """The training dataset and the held-out clean images for validation (if any)."""
    if cfg.pairs and not cfg.clean_dirs:
        return PairedFolder(cfg.pairs[0], cfg.pairs[1], cfg.crop, cfg.channels, seed, limits_of(cfg)), None
    images = load_clean_images(cfg.clean_dirs, cfg.channels, cfg.crop, limits_of(cfg))
    if cfg.clean_dirs and not images.images and not cfg.procedural:
        raise ValueError(f"no usable images in {', '.join(cfg.clean_dirs)} "
                         f"({images.skipped_small} smaller than the crop, {images.skipped_unreadable} unreadable)")
    if cfg.clean_weights:
        if len(cfg.clean_weights) != len(cfg.clean_dirs):
            raise ValueError(f"{len(cfg.clean_weights)} source weight(s) for {len(cfg.clean_dirs)} clean folder(s): "
                             "give one weight per folder")
        empty = [d for k, d in enumerate(cfg.clean_dirs) if cfg.clean_weights[k] > 0 and k not in images.source]
        if empty:
            raise ValueError(f"no usable images in weighted clean folder(s): {', '.join(empty)}")
    train, val = split_holdout(images, cfg.val_holdout)
    weight = cfg.procedural_weight if cfg.procedural else 0.0
    synthetic = CleanCrops(train, cfg.crop, cfg.channels, weight, seed, cfg.clean_weights)
    if cfg.pairs:
        pairs = PairedFolder(cfg.pairs[0], cfg.pairs[1], cfg.crop, cfg.channels, seed, limits_of(cfg))
        return MixedPairs(pairs, synthetic, cfg.pairs_weight, seed), val
    return synthetic, val
