"""`Denoiser`: load any artifact, pick a backend, denoise any image with a strength control.

    from denoiser import Denoiser
    dn = Denoiser.load("checkpoints/default-color.safetensors")   # or .onnx / .engine
    clean = dn(pil_image, strength=0.8)   # PIL, numpy (uint8/uint16/float) or torch in, same out

Backend "auto": a TensorRT engine when given one (TensorRT + a GPU needed); for a checkpoint,
PyTorch on CUDA when a GPU is there, else ONNX Runtime on the CPU, which runs our U-Nets
2-3x faster than PyTorch there (BENCHMARKS.md); decided in backends.choose_backends. The
ONNX file is an export of that very checkpoint: one beside it, or one exported once into a
cache folder (export_cache.py).

Memory: images are cut into tiles whose size comes from `memory_mb` (see tiling.py).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from denoiser.core.channels import adapt_channels, is_gray
from denoiser.core.imageio import from_pil, to_pil
from denoiser.core.metadata import ExportMeta, ModelMeta
from denoiser.core.paths import CHECKPOINTS_DIR
from denoiser.deploy.backends import (
    BACKEND_CHOICES,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    artifact_kind,
    check_precision,
    choose_backends,
    cuda_available,
)
from denoiser.run.tiling import denoise_tiled, plan_tiles

DEFAULT_MODEL = CHECKPOINTS_DIR / "default-color.safetensors"
# With no model named, gray images go to the shipped gray model: it is 0.4-0.5 dB better on
# them than the colour model (checkpoints/MODEL_CARD.md). Loaded only when a gray image comes.
# Gray means 1 channel, or 3 identical ones: scans and black-and-white photos are often saved
# as RGB, and their noise is then the same in every channel, which is what the gray model knows.
DEFAULT_GRAY_MODEL = CHECKPOINTS_DIR / "default-gray.safetensors"
DEFAULT_MEMORY_MB = 1024  # activations of one backend call; whole-process peak is in BENCHMARKS.md
# A non-blind model says so in its config ("model" metadata) and takes the noise level as one
# extra input channel, constant sigma/255 (the FFDNet convention). Our shipped models are blind.
NOISE_LEVEL_KEY = "noise_level_input"
# A denoiser's output is an image in [0, 1]; values far outside it (or NaN, infinity) come from
# broken weights, and clipped they would pass for a black or white image.
OUTPUT_BOUND = 64.0


def shipped_gray_companion(path: str | Path) -> Path | None:
    """The shipped gray model when `path` is the shipped colour model (and both are there), else None."""
    if Path(path).resolve() == DEFAULT_MODEL.resolve() and DEFAULT_GRAY_MODEL.is_file():
        return DEFAULT_GRAY_MODEL
    return None


def default_model_path() -> Path:
    """$DENOISER_MODEL, else the shipped default colour model."""
    return Path(os.environ.get("DENOISER_MODEL", DEFAULT_MODEL))


@dataclass(frozen=True)
class ModelInfo:
    path: str
    kind: str  # checkpoint | onnx | engine
    channels: int
    alignment: int
    receptive_field: int
    precision: str
    meta: dict  # the file's metadata as stored; read through `record`
    record: ModelMeta = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "record", ModelMeta.from_dict(self.meta, self.path))

    @property
    def bytes_per_pixel(self) -> float:
        """The model's peak activation bytes per input pixel: recorded by the export (or put
        in `meta` from the checkpoint's model); exports older than that are U-Nets."""
        if self.record.activation_bytes_per_pixel is not None:
            return float(self.record.activation_bytes_per_pixel)
        from denoiser.core.nets import ARCHS

        cfg = self.record.model_config(self.path)
        return float(ARCHS[cfg.arch].activation_bytes(cfg)) if cfg.arch in ARCHS else 4096.0  # unknown: be careful

    @property
    def takes_sigma(self) -> bool:
        return bool(self.record.model.get(NOISE_LEVEL_KEY, False))  # a non-blind export: a key of its model config


class Denoiser:
    def __init__(self, backend: Any, info: ModelInfo, tile: int | None = None,
                 memory_mb: float = DEFAULT_MEMORY_MB, note: str = "", margin: int | None = None):
        self.backend, self.info, self.memory_mb, self.note = backend, info, memory_mb, note
        # Tile overlap: the receptive field (exact), or the measured reach in the fast mode (quality.py)
        self.margin = margin or info.receptive_field
        self.quality: str | None = None  # set by load()
        self._tile_arg = tile
        self.plan()
        self.max_side: int | None = None
        self.gray_path: Path | None = None  # set by load(): the model gray images go to (gray_model)
        self._gray: Denoiser | None = None
        self._gray_lock = threading.Lock()
        self._load_args: dict = {}
        profile = getattr(backend, "profile", None)  # a TensorRT engine takes a fixed range of shapes
        if profile is not None:
            from denoiser.deploy.tensorrt import fit_tile

            self.tile = fit_tile(self.tile, self.margin, info.alignment, profile)
            self.tile_batch = min(self.tile_batch, profile.max_batch)
            self.max_side = min(profile.max_hw)

    def plan(self) -> None:
        """Tile side and tiles per call for the memory budget and the margin."""
        # uint8 activations: ONNX Runtime held 276 B/px for the shipped INT8 U-Net (1096x2000 tile)
        # against the 1008 B/px its FP32 formula says; a third leaves room
        bpp = self.info.bytes_per_pixel / (3 if getattr(self.backend, "precision", "") == "int8" else 1)
        self.tile, self.tile_batch = plan_tiles(self.memory_mb, bpp, self.margin, self.info.alignment, self._tile_arg)

    @classmethod
    def load(cls, path: str | Path | None = None, backend: str = "auto", device: str | None = None,
             tile: int | None = None, memory_mb: float = DEFAULT_MEMORY_MB, threads: int = 0,
             gray_model: str | Path | None = None, quality: str | None = None) -> "Denoiser":
        """Load a checkpoint, .onnx or .engine. tile=None: the largest tile that fits memory_mb.

        quality: "fast", "balanced" or "high" (quality.py), or None: a checkpoint on the CPU
        then runs its INT8 export where that passed its check, else FP32 (`note` says which).

        gray_model: a second model that gray images go to (loaded on the first one). With no
        path and no $DENOISER_MODEL it is the shipped gray model (DEFAULT_GRAY_MODEL).
        """
        if gray_model is None and path is None and "DENOISER_MODEL" not in os.environ:
            gray_model = shipped_gray_companion(DEFAULT_MODEL)
        if gray_model is not None:
            if not Path(gray_model).is_file():
                raise FileNotFoundError(f"gray model not found: {gray_model}")
            dn = cls.load(path or default_model_path(), backend, device, tile, memory_mb, threads, quality=quality)
            dn.gray_path = Path(gray_model)
            dn._load_args = {"backend": backend, "device": device, "tile": tile, "memory_mb": memory_mb,
                             "threads": threads, "quality": quality}
            return dn
        from denoiser.run.quality import check_quality, with_quality

        check_quality(quality)
        return with_quality(cls._load_one(path, backend, device, tile, memory_mb, threads, quality), quality)

    @classmethod
    def _load_one(cls, path: str | Path | None, backend: str, device: str | None, tile: int | None,
                  memory_mb: float, threads: int, quality: str | None) -> "Denoiser":
        path = Path(path) if path is not None else default_model_path()
        if backend in BACKEND_CHOICES and not path.is_file():
            raise FileNotFoundError(f"model not found: {path}")
        order = choose_backends(path, backend, device)  # refuses what the backend does not run
        sized = {"tile": tile, "memory_mb": memory_mb}
        kind = artifact_kind(path)
        if kind == "engine":
            from denoiser.deploy.tensorrt import read_engine_meta

            side = read_engine_meta(path)  # export copies the model config into it
            if side.model is None:
                raise ValueError(f"{path}: engine sidecar lacks the model config; rebuild with `denoiser export`")
            info = _info(path, "engine", side.to_dict(), side.precision or "unknown")
            check_precision("tensorrt", info.precision, path)
            return cls(TensorRTBackend(path, info.precision), info, **sized)
        if kind == "onnx":
            from denoiser.deploy.export import read_export_meta

            meta = read_export_meta(path)
            info = _info(path, "onnx", meta, meta.precision or "fp32")
            check_precision("onnxruntime", info.precision, path)
            return cls(OnnxRuntimeBackend(path, info.precision, threads), info, **sized)
        return cls._load_checkpoint(path, order, device, threads, quality, sized)

    @classmethod
    def _load_checkpoint(cls, path: Path, order: tuple[str, ...], device: str | None, threads: int,
                         quality: str | None, sized: dict) -> "Denoiser":
        """A checkpoint on the first backend of `order` that loads (see choose_backends)."""
        from denoiser.run.quality import cached_cpu_choice, cpu_choice

        exported = order[0] == "onnxruntime"  # runs as its ONNX export (export_cache.py)
        hit = cached_cpu_choice(path, quality) if exported else None
        if hit:  # exported before: the sidecars say all, no torch (quality.py)
            onnx_path, precision, margin, note, meta = hit
            info = _info(path, "checkpoint", meta, "fp32")
            return cls(OnnxRuntimeBackend(onnx_path, precision, threads, meta=meta), info, **sized, note=note,
                       margin=margin)
        import torch

        from denoiser.core.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        info = ModelInfo(str(path), "checkpoint", model.cfg.channels, model.alignment, model.receptive_field,
                         "fp32", {**meta, "activation_bytes_per_pixel": model.activation_bytes_per_pixel()})
        note = ""
        if exported:
            try:
                onnx_path, precision, margin, note, _ = cpu_choice(path, model, quality)
                return cls(OnnxRuntimeBackend(onnx_path, precision, threads), info, **sized, note=note, margin=margin)
            except Exception as e:  # export needs onnx + onnxscript; PyTorch still works without them
                if len(order) == 1:  # onnxruntime asked for by name: nothing to fall back on
                    raise RuntimeError(f"could not export {path} to ONNX: {e}") from e
                note = f"ONNX export failed ({type(e).__name__}: {e}); using PyTorch"
                print(f"denoiser: {note}", file=sys.stderr)
        if threads:
            torch.set_num_threads(threads)
        if device is None:  # under torchrun each local rank takes its own GPU
            device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda_available() else "cpu"
        return cls(TorchBackend(model, device), info, **sized, note=note)

    def describe(self) -> str:
        text = f"{Path(self.info.path).name}: {self.backend.describe()}, tiles {self.tile}px x{self.tile_batch}"
        text += f" (margins {self.margin} px)" if self.margin != self.info.receptive_field else ""
        text = f"quality {self.quality}: {text}" if self.quality else text
        return text + (f"; gray images: {self.gray_path.name}" if self.gray_path else "")

    def _gray_model(self) -> "Denoiser":
        with self._gray_lock:  # the app may denoise from several threads
            if self._gray is None:
                self._gray = Denoiser.load(self.gray_path, **self._load_args)
            return self._gray

    def denoise_array(self, arr: np.ndarray, strength: float = 1.0, sigma: float | None = None,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(H, W, C) float32 in [0, 1], C = 1 or 3 -> denoised, a new array of the same shape.

        strength blends from the input (0) to the full denoise (1); sigma (0-255 scale) is
        for models that take a noise level. A tiled image calls `progress(tiles done, total)`.
        """
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        arr = np.asarray(arr, dtype=np.float32)
        if self.gray_path is not None and is_gray(arr):
            out = self._gray_model().denoise_array(np.ascontiguousarray(arr[..., :1]), strength, sigma, progress)
            return out if arr.shape[2] == 1 else np.repeat(out, arr.shape[2], axis=2)
        run = _checked(self._runner(arr.shape[2], sigma), Path(self.info.path).name)
        if strength == 0.0:
            return arr.copy()
        out = denoise_tiled(run, arr, self.tile, self.margin, self.info.alignment, self.tile_batch,
                            self.max_side, progress)
        np.clip(out, 0.0, 1.0, out=out)
        if strength != 1.0:  # out = arr + strength * (out - arr), in place: no full-size temporaries
            out -= arr
            out *= np.float32(strength)
            out += arr
        return out

    def check_sigma(self, sigma: float | None) -> None:
        """A noise level goes only to models that take one, and those need it."""
        name = Path(self.info.path).name
        if sigma is not None and not self.info.takes_sigma:
            raise ValueError(f"{name} is a blind denoiser (it estimates the noise itself) and takes no noise "
                             "level: leave out --sigma")
        if self.info.takes_sigma:
            if sigma is None:
                raise ValueError(f"{name} needs the noise level: give --sigma (0-255 scale)")
            if not 0 <= sigma <= 255:
                raise ValueError(f"sigma is on the 0-255 scale, got {sigma}")

    def _runner(self, channels: int, sigma: float | None) -> Callable[[np.ndarray], np.ndarray]:
        """The backend, adapted per tile to the image's channel count and the noise level."""
        c_model, run = self.info.channels, self.backend
        self.check_sigma(sigma)
        if self.info.takes_sigma:
            base = run

            def run(x: np.ndarray) -> np.ndarray:
                level = np.full((x.shape[0], 1, *x.shape[2:]), sigma / 255.0, np.float32)
                return base(np.concatenate([x, level], axis=1))

        return adapt_channels(run, channels, c_model)  # gray image on a colour model, and back (core/channels.py)

    def __call__(self, image: Any, strength: float = 1.0, sigma: float | None = None) -> Any:
        """Denoise a PIL image, numpy array or torch tensor; return the same type.

        numpy: (H, W) or (H, W, C) with C = 1, 2 (gray + alpha), 3 or 4 (RGBA); uint8, uint16 or
        float in [0, 1]. torch: (C, H, W) or (B, C, H, W), uint8 or float in [0, 1], any device.
        Alpha is passed through untouched. strength in [0, 1] blends input (0) to denoised (1).
        """
        from PIL import Image

        if isinstance(image, Image.Image):
            arr, info = from_pil(image)
            return to_pil(self.denoise_array(arr, strength, sigma), info)
        if isinstance(image, np.ndarray):
            return self._call_numpy(image, strength, sigma)
        import torch

        if isinstance(image, torch.Tensor):
            if image.ndim not in (3, 4):
                raise ValueError(f"expected a (C, H, W) or (B, C, H, W) tensor, got {tuple(image.shape)}")
            x = image.detach().cpu()
            if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64, torch.float16):
                x = x.float()  # bfloat16 and friends have no numpy twin
            batch = x if x.ndim == 4 else x[None]
            outs = [self._call_numpy(t.permute(1, 2, 0).numpy(), strength, sigma) for t in batch]
            y = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).to(image.device, image.dtype)
            return y if image.ndim == 4 else y[0]
        raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")

    def _call_numpy(self, image: np.ndarray, strength: float, sigma: float | None) -> np.ndarray:
        dtype, shape = image.dtype, image.shape
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(dtype)
        if scale is None and not np.issubdtype(dtype, np.floating):
            raise TypeError(f"unsupported array dtype {dtype}: use uint8, uint16 or float in [0, 1]")
        arr = image.astype(np.float32) / np.float32(scale or 1.0)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
            raise ValueError(f"expected an (H, W) or (H, W, C) array with C in 1-4, got {shape}")
        has_alpha = arr.shape[2] in (2, 4)
        colour = np.ascontiguousarray(arr[..., :-1] if has_alpha else arr)
        out = self.denoise_array(colour, strength, sigma)
        if has_alpha:
            out = np.concatenate([out, arr[..., -1:]], axis=2)
        out = out.reshape(shape)
        if scale is None:
            return out.astype(dtype)
        return np.rint(np.clip(out, 0, 1) * scale).astype(dtype)


def _checked(run: Callable[[np.ndarray], np.ndarray], name: str) -> Callable[[np.ndarray], np.ndarray]:
    """`run`, refusing outputs that are not finite or far outside [0, 1] (see OUTPUT_BOUND)."""
    def checked(x: np.ndarray) -> np.ndarray:
        y = run(x)
        lo, hi = float(y.min()), float(y.max())  # NaN propagates and fails the test below
        if not (-OUTPUT_BOUND <= lo and hi <= 1.0 + OUTPUT_BOUND):
            if not np.isfinite(x).all():  # a caller's float array, not the model, is to blame
                raise ValueError("the image holds values that are not finite (NaN or infinity)")
            raise ValueError(f"{name} gave values that are not finite or far outside an image's range "
                             f"({lo:.3g} to {hi:.3g}): the model's weights are broken")
        return y
    return checked


def _bounded_int(value: int, key: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValueError(f"{key} {value!r} is not an integer in {lo}..{hi}")
    return value


def _info(path: Path, kind: str, meta: ExportMeta | dict, precision: str) -> ModelInfo:
    """ModelInfo from an export's metadata (or a sidecar holding it), each field checked: the
    file may come from anyone. The record checks the fields' types, this their ranges."""
    from denoiser.core.config import ModelConfig, check_model_sizes, from_dict

    meta = meta if isinstance(meta, ExportMeta) else ExportMeta.from_dict(meta, path)
    try:  # sizes only: running an export needs no architecture code (nor torch)
        cfg = from_dict(ModelConfig, meta.model)
        check_model_sizes(cfg)
        alignment = _bounded_int(meta.alignment, "alignment", 1, 1 << 16)
        margin = _bounded_int(meta.receptive_field, "receptive_field", 0, 1 << 20)
        per_pixel = 1.0 if meta.activation_bytes_per_pixel is None else meta.activation_bytes_per_pixel
        if not 0 < per_pixel < 1 << 30:
            raise ValueError(f"activation_bytes_per_pixel {per_pixel!r} is out of range")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: damaged denoiser metadata ({type(e).__name__}: {e})") from None
    return ModelInfo(str(path), kind, cfg.channels, alignment, margin, precision, meta.to_dict())
