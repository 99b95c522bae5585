"""`denoiser synth`: write the noisy/clean pairs that a noise spec makes from clean images.

OUT/noisy/NAME.png and OUT/clean/NAME.png share their names, so `denoiser train --pairs
OUT/noisy OUT/clean` trains on exactly these files; OUT/synth.json records how they were made.
Two modes (SynthConfig.crop):

* whole images (crop 0): every clean image once, full size, channels kept unless asked
  otherwise. Each image's noise is seeded by (seed, its relative name), so adding files to the
  folder leaves the other images' noise unchanged.
* crops (crop N): the first `count` crops of the training stream for the same seed and data
  options, with noise made batch by batch by a generator seeded as the trainer seeds its own.
  These are the pairs a CPU training run with that seed sees first (a CUDA run draws other
  noise from its CUDA generator), except that the noisy files are clipped and rounded to 8 bits.

Outputs never overwrite anything: the noisy/ and clean/ folders must be new or empty, and they
may not overlap a clean source folder (they would be read back as clean images next time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from denoiser.core.config import DataConfig, NoiseConfig, SynthConfig, to_dict
from denoiser.core.data import build_training_data, list_images, to_channels, to_tensor
from denoiser.core.imageio import ImageError, read_image, to_uint8, write_image
from denoiser.core.noise.ops import parse_spec, round_to_8bit, synthesize

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # (done, total, name)
PROCEDURAL_COUNT = 64  # crops to write when there are no images to count


@dataclass
class SynthReport:
    out_dir: Path
    pairs: int = 0
    skipped_unreadable: int = 0
    skipped_small: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        skipped = (f"; skipped {self.skipped_small} image(s) smaller than the crop and "
                   f"{self.skipped_unreadable} unreadable" if self.skipped_small or self.skipped_unreadable else "")
        return (f"wrote {self.pairs} pair(s) to {self.out_dir / 'noisy'} and {self.out_dir / 'clean'} "
                f"in {self.seconds:.1f} s{skipped}")


def write_pairs(out_dir: str | Path, noise: NoiseConfig, data: DataConfig, synth: SynthConfig,
                progress: Progress | None = None) -> SynthReport:
    """Write OUT/noisy, OUT/clean and OUT/synth.json; return what was written."""
    out = Path(out_dir)
    parse_spec(noise.spec)  # a bad spec fails before anything is written
    if synth.channels not in (0, 1, 3):
        raise ValueError(f"channels must be 0 (keep), 1 (gray) or 3 (colour), got {synth.channels}")
    if synth.crop < 0 or synth.count < 0:
        raise ValueError("crop and count must be >= 0")
    _check_output(out, data.clean_dirs)
    start = time.perf_counter()
    report = SynthReport(out)
    if synth.crop > 0:
        data = replace(data, crop=synth.crop, channels=synth.channels or data.channels, pairs=None)
        _write_crops(out, noise, data, synth, report, progress)
    elif not data.clean_dirs:
        raise ValueError("whole-image pairs need clean folders (--clean DIR); "
                         "give --crop N to write procedural crops instead")
    else:
        _write_whole_images(out, noise, data.clean_dirs, synth, report, progress)
    report.seconds = time.perf_counter() - start
    manifest = {"noise": to_dict(noise), "synth": to_dict(synth), "pairs": report.pairs,
                "skipped_unreadable": report.skipped_unreadable, "skipped_small": report.skipped_small}
    manifest["data"] = to_dict(data) if synth.crop > 0 else {"clean_dirs": list(data.clean_dirs)}
    (out / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return report


def _check_output(out: Path, clean_dirs: tuple[str, ...]) -> None:
    for d in clean_dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"clean folder not found: {d}")
        src, dst = Path(d).resolve(), out.resolve()
        if src == dst or dst in src.parents or src in dst.parents:
            raise ValueError(f"output {out} overlaps the clean folder {d}: the pairs would be read back as "
                             "clean images; choose an output outside it")
    for sub in (out / "noisy", out / "clean"):
        if sub.exists() and (not sub.is_dir() or any(sub.iterdir())):
            raise ValueError(f"{sub} already exists and is not empty; synth never overwrites: "
                             "choose another -o or empty it")


def _write_pair(out: Path, name: str, noisy: torch.Tensor, clean: torch.Tensor) -> None:
    """(C, H, W) tensors in [0, 1] -> two 8-bit PNGs under the same name."""
    write_image(out / "noisy" / name, round_to_8bit(noisy).permute(1, 2, 0).numpy())
    write_image(out / "clean" / name, clean.permute(1, 2, 0).numpy())


def _write_crops(out: Path, noise: NoiseConfig, data: DataConfig, synth: SynthConfig, report: SynthReport,
                 progress: Progress | None) -> None:
    dataset, _ = build_training_data(data, synth.seed)
    images = dataset.images
    report.skipped_small, report.skipped_unreadable = images.skipped_small, images.skipped_unreadable
    count = synth.count or len(images.images) or PROCEDURAL_COUNT
    gen = torch.Generator().manual_seed(synth.seed)  # as train.py seeds rank 0's noise generator
    batch = data.batch_size
    for first in range(0, count, batch):
        # Whole batches, as the trainer draws them, so the generator advances exactly as in training.
        clean = torch.stack([dataset[i] for i in range(first, first + batch)])
        noisy = synthesize(clean, noise, gen)
        for j in range(min(batch, count - first)):
            name = f"{first + j:06d}.png"
            _write_pair(out, name, noisy[j], clean[j])
            report.pairs += 1
            if progress:
                progress(report.pairs, count, name)


def _write_whole_images(out: Path, noise: NoiseConfig, clean_dirs: tuple[str, ...], synth: SynthConfig,
                        report: SynthReport, progress: Progress | None) -> None:
    items = _output_names(clean_dirs)
    for done, (path, name) in enumerate(items, 1):
        try:
            arr, _ = read_image(path)
        except ImageError as e:
            log.warning("skipped %s: %s", path, e)
            report.skipped_unreadable += 1
            continue
        if synth.channels:
            arr = to_channels(arr, synth.channels)
        clean = to_tensor(to_uint8(arr))
        gen = torch.Generator().manual_seed(_name_seed(synth.seed, name))
        noisy = synthesize(clean[None], noise, gen)[0]
        _write_pair(out, name, noisy, clean)
        report.pairs += 1
        if progress:
            progress(done, len(items), name)


def _output_names(clean_dirs: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(source file, output name): the relative path as .png, under the folder's name if several."""
    items, used = [], set()
    labels = _folder_labels(clean_dirs)
    for d, label in zip(clean_dirs, labels):
        for path in list_images(d):
            name = path.relative_to(d).with_suffix(".png").as_posix()
            if label:
                name = f"{label}/{name}"
            if name.lower() in used:  # a.jpg beside a.png: keep both, told apart by the old extension
                name = name[:-4] + f"_{path.suffix[1:]}.png"
            used.add(name.lower())
            items.append((path, name))
    return items


def _folder_labels(clean_dirs: tuple[str, ...]) -> list[str]:
    if len(clean_dirs) == 1:
        return [""]
    labels = []
    for d in clean_dirs:
        base = Path(d).resolve().name or "source"
        label, n = base, 2
        while label in labels:
            label, n = f"{base}_{n}", n + 1
        labels.append(label)
    return labels


def _name_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: any torch generator accepts it
