"""The fixed validation set a run is measured on, and a record of what it is made of.

In order of preference: a `--val-dir` (pairs, or clean images given the run's noise); held-out
pairs when training on pairs (at least one of two or more); held-out clean images (every k-th
of ten or more) given the run's noise. Otherwise validation falls back to procedural images
with the run's noise, whose PSNR says little about the user's own images: the run says so at
its start (a warning) and in its config.json (`validation`), so that nobody reads the curve
as more than it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from denoiser.core.config import RunConfig
from denoiser.core.data import (
    CleanCrops,
    CleanImages,
    PairedFolder,
    build_training_data,
    limits_of,
    load_clean_images,
)
from denoiser.core.noise.ops import synthesize

VAL_SEED = 1_000_003  # a seed namespace of its own: never equal to a training index stream
log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    dataset: torch.utils.data.Dataset
    val_noisy: torch.Tensor
    val_clean: torch.Tensor
    items: int  # training images or pairs: what one epoch covers
    validation: dict  # {"source": what the crops come from, "procedural_fallback": why, or None}


def build_data(cfg: RunConfig, device: torch.device) -> TrainingData:
    """Training data plus a fixed validation set that training never sees."""
    d = cfg.data
    dataset, held_out = build_training_data(d, cfg.train.seed)
    pairs = dataset if isinstance(dataset, PairedFolder) else getattr(dataset, "pairs", None)  # MixedPairs too
    if pairs is not None and d.val_dir is None:
        train_pairs, val_pairs = pairs.split_holdout(d.val_holdout)
        if len(val_pairs):
            held_out = val_pairs
            if dataset is pairs:
                dataset = train_pairs
            else:
                dataset.pairs = train_pairs
    items = len(dataset) if isinstance(dataset, PairedFolder) else len(dataset.images.images)
    val_noisy, val_clean, validation = _validation_set(cfg, held_out, pairs, device)
    if validation["procedural_fallback"]:
        log.warning("validation uses procedural images: %s. Its PSNR says little about your own images; "
                    "give --val-dir to validate on them.", validation["procedural_fallback"])
    return TrainingData(dataset, val_noisy, val_clean, items, validation)


def _validation_set(cfg: RunConfig, held_out, pairs, device) -> tuple[torch.Tensor, torch.Tensor, dict]:
    d = cfg.data
    source = None
    if d.val_dir:
        vdir = Path(d.val_dir)
        if (vdir / "noisy").is_dir() and (vdir / "clean").is_dir():
            held_out = PairedFolder(vdir / "noisy", vdir / "clean", min(d.val_crop, d.crop * 2), d.channels, VAL_SEED,
                                    limits_of(d))
            source = f"pairs in {vdir}"
        else:
            held_out = load_clean_images((str(vdir),), d.channels, 16, limits_of(d))
            if not held_out.images:
                raise ValueError(f"--val-dir {vdir}: no usable images")
            source = f"clean images in {vdir}"
    if isinstance(held_out, PairedFolder) and len(held_out):
        held_out.seed = VAL_SEED
        noisy, clean = zip(*(held_out[i] for i in range(d.val_count)))
        record = {"source": source or f"{len(held_out)} held-out pair(s)", "procedural_fallback": None}
        return torch.stack(noisy).to(device), torch.stack(clean).to(device), record
    if held_out is not None and getattr(held_out, "images", None):
        crop = min(d.val_crop, *(min(shape[:2]) for shape in held_out.shapes))
        crops = CleanCrops(held_out, crop, d.channels, 0.0, VAL_SEED)
        record = {"source": source or f"{len(held_out.images)} held-out clean image(s)", "procedural_fallback": None}
    else:  # procedural only: a different seed namespace is as unseen as it gets
        crops = CleanCrops(CleanImages([], []), d.val_crop, d.channels, 1.0, VAL_SEED)
        record = {"source": "procedural images", "procedural_fallback": _why_procedural(cfg, pairs)}
    clean = torch.stack([crops[i] for i in range(d.val_count)]).to(device)
    noisy = synthesize(clean, cfg.noise, torch.Generator(device=device).manual_seed(VAL_SEED))
    return noisy, clean, record


def _why_procedural(cfg: RunConfig, pairs: PairedFolder | None) -> str | None:
    """Why a run with files of its own is validated on procedural images (None: it has none)."""
    d = cfg.data
    if pairs is not None:
        return f"{len(pairs)} pair(s) are too few to hold one out"
    if not d.clean_dirs:
        return None
    if d.val_holdout <= 0:
        return "no clean images are held out (--val-holdout 0)"
    return "fewer than 10 clean images, too few to hold some out"
