"""Measure a rung of the precision ladder on real images, under the benchmark protocol.

Every export (FP32, FP16, INT8) is run on a held-out set of clean images made noisy as
the benchmark protocol (docs/ARCHITECTURE.md) says (`clip(round(clean + N(0, sigma)), 0, 255)`,
a fixed seed per image), and scored twice: PSNR of its 8-bit output against the clean image (what a user
sees), and PSNR of its float output against the FP32 PyTorch model's (how far the rung
drifted). This module also supplies the image sets: the held-out check set (the product's
sample images by default) and the calibration set for INT8, kept disjoint from it.

Gray images through a colour model are run as gray RGB and averaged back, with the very
adaptation `Denoiser` uses (core/channels.py), so these numbers match `denoiser eval` on the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from denoiser.core.channels import Runner, adapt_channels
from denoiser.core.data import list_images, to_channels
from denoiser.core.imageio import read_image, to_uint8
from denoiser.core.metrics import psnr
from denoiser.core.noise.ops import protocol_noisy_uint8
from denoiser.core.paths import DATA_DIR
from denoiser.core.procedural import dead_leaves

SAMPLES_DIR = DATA_DIR


@dataclass
class ImageSet:
    """Clean uint8 (H, W, C) images in their own channel count, and where they came from."""

    name: str
    images: list[np.ndarray]
    files: list[str]  # resolved paths; empty for procedural images


def folder_images(folder: str | Path, name: str | None = None) -> ImageSet:
    files = list_images(folder)
    if not files:
        raise ValueError(f"no images in {folder}")
    return ImageSet(name or str(folder), [to_uint8(read_image(p)[0]) for p in files],
                    [str(p.resolve()) for p in files])


def procedural_images(count: int, size: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(f"procedural dead-leaves ({count} x {size}px, seed {seed})",
                    [dead_leaves(size, 3, rng) for _ in range(count)], [])


def sample_images() -> ImageSet:
    """The product's clean sample images (data/, minus the ready-made noisy ones), or, where
    the package was installed without them, procedural images (so exports always check)."""
    if SAMPLES_DIR.is_dir():
        files = [p for p in list_images(SAMPLES_DIR) if not p.name.startswith("noisy_")]
        if files:
            return ImageSet("data/ samples", [to_uint8(read_image(p)[0]) for p in files],
                            [str(p.resolve()) for p in files])
    return procedural_images(3, 256, seed=20261122)


def check_images(check_dir: str | Path | None) -> ImageSet:
    return folder_images(check_dir) if check_dir else sample_images()


def calibration_images(calib_dir: str | Path | None, held_out: ImageSet, procedural: int = 24,
                       seed: int = 7) -> ImageSet:
    """INT8 calibration images: `calib_dir`, else procedural images plus the samples; never
    a file of the held-out check set (calibrating on what is reported would flatter it)."""
    sets = [folder_images(calib_dir)] if calib_dir else [procedural_images(procedural, 160, seed), sample_images()]
    banned = set(held_out.files)
    images, files, names = [], [], []
    for s in sets:
        keep = [i for i in range(len(s.images)) if not s.files or s.files[i] not in banned]
        images += [s.images[i] for i in keep]
        files += [s.files[i] for i in keep] if s.files else []
        if keep:
            names.append(s.name if len(keep) == len(s.images) else
                         f"{s.name} minus {len(s.images) - len(keep)} file(s) of the check set")
    if not images:
        raise ValueError(f"no calibration images left: every file of {calib_dir} is in the check set; "
                         "calibrate on other images than the ones the export is checked on")
    return ImageSet(" + ".join(names), images, files)


@dataclass
class ProtocolSet:
    """Clean images with their protocol-noisy versions: what every rung is scored on."""

    name: str
    clean: list[np.ndarray]
    noisy: list[np.ndarray]
    sigma: float
    seed: int


def protocol_set(images: ImageSet, sigma: float, seed: int = 0) -> ProtocolSet:
    noisy = [protocol_noisy_uint8(im, sigma, seed + i) for i, im in enumerate(images.images)]
    return ProtocolSet(images.name, images.images, noisy, sigma, seed)


def run_image(run: Runner, noisy_u8: np.ndarray, model_channels: int) -> np.ndarray:
    """Denoise one whole uint8 (H, W, C) image; float32 (H, W, C) in [0, 1] out."""
    chw = noisy_u8.transpose(2, 0, 1).astype(np.float32) / 255.0
    out = adapt_channels(run, chw.shape[0], model_channels)(chw[None])[0]
    return np.clip(out, 0.0, 1.0).transpose(1, 2, 0)


def run_all(run: Runner, pset: ProtocolSet, model_channels: int) -> list[np.ndarray]:
    return [run_image(run, n, model_channels) for n in pset.noisy]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    ta, tb = (torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)[None], dtype=np.float32)) for v in (a, b))
    return float(psnr(ta, tb)[0])


def score(outputs: list[np.ndarray], pset: ProtocolSet, reference: list[np.ndarray] | None = None) -> dict:
    """Mean PSNR of 8-bit outputs against clean; and of float outputs against `reference`
    (the FP32 model's outputs), capped at 100 dB where they are identical."""
    vs_clean = [_psnr(to_uint8(o).astype(np.float32) / 255, c.astype(np.float32) / 255)
                for o, c in zip(outputs, pset.clean)]
    out = {"psnr": float(np.mean(vs_clean)), "per_image": [round(p, 4) for p in vs_clean]}
    if reference is not None:
        vs_ref = [min(100.0, _psnr(o, r)) for o, r in zip(outputs, reference)]
        out["psnr_vs_fp32"] = float(np.mean(vs_ref))
    return out


def torch_runner(model: torch.nn.Module) -> Runner:
    model = model.float().eval().cpu()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return run


def onnx_runner(path: str | Path, threads: int = 0) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def to_model_channels(images: ImageSet, channels: int) -> list[np.ndarray]:
    return [to_channels(im, channels) for im in images.images]
