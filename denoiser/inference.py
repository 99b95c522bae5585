"""`Denoiser`: load any artifact, pick a backend, denoise any image with a strength control.

    from denoiser import Denoiser
    dn = Denoiser.load("checkpoints/default-color.safetensors")   # or .onnx / .engine
    clean = dn(pil_image, strength=0.8)   # PIL, numpy (uint8/uint16/float) or torch in, same out

Backend "auto": a TensorRT engine when given one (and TensorRT + a GPU are there), PyTorch
on CUDA for a checkpoint when a GPU is there, else ONNX Runtime on the CPU when an exported
ONNX file is given or sits beside the checkpoint (same name, .onnx, exported from this very
checkpoint), else PyTorch on the CPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import OnnxRuntimeBackend, TensorRTBackend, TorchBackend
from .imageio import from_pil, to_pil
from .tiling import denoise_tiled

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "checkpoints" / "default-color.safetensors"
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


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
    meta: dict


class Denoiser:
    def __init__(self, backend: Any, info: ModelInfo, tile: int = 512, tile_batch: int = 4):
        self.backend, self.info, self.tile, self.tile_batch = backend, info, tile, tile_batch

    @classmethod
    def load(cls, path: str | Path | None = None, backend: str = "auto", device: str | None = None,
             tile: int = 512, threads: int = 0) -> "Denoiser":
        import torch

        path = Path(path) if path is not None else default_model_path()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if not path.is_file():
            raise FileNotFoundError(f"model not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".engine":
            if backend not in ("auto", "tensorrt"):
                raise ValueError("a TensorRT engine runs only on the tensorrt backend")
            from .tensorrt import read_engine_sidecar

            side = read_engine_sidecar(path)  # export copies the model config into it
            if "model" not in side:
                raise ValueError(f"{path}: engine sidecar lacks the model config; rebuild with `denoiser export`")
            info = _info(path, "engine", side, side.get("precision", "unknown"))
            return cls(TensorRTBackend(path, info.precision), info, tile)
        if suffix == ".onnx":
            from .export import read_onnx_metadata

            meta = read_onnx_metadata(path)
            if backend not in ("auto", "onnxruntime"):
                raise ValueError(f"an ONNX file runs on the onnxruntime backend, not {backend!r}")
            info = _info(path, "onnx", meta, meta.get("precision", "fp32"))
            return cls(OnnxRuntimeBackend(path, info.precision, threads), info, tile)
        if suffix != ".safetensors":
            raise ValueError(f"{path}: expected a .safetensors checkpoint, an .onnx file or an .engine")

        from .checkpoint import file_sha256, load_checkpoint

        model, meta = load_checkpoint(path)
        info = ModelInfo(str(path), "checkpoint", model.cfg.channels, model.alignment, model.receptive_field,
                         "fp32", meta)
        cuda = torch.cuda.is_available() and device != "cpu"
        if backend == "onnxruntime" or (backend == "auto" and not cuda):
            onnx_path = path.with_suffix(".onnx")
            if onnx_path.exists() and _exported_from(onnx_path, file_sha256(path)):
                return cls(OnnxRuntimeBackend(onnx_path, "fp32", threads), info, tile)
            if backend == "onnxruntime":
                raise FileNotFoundError(f"no ONNX export of {path} beside it: run "
                                        f"`denoiser export {path} -o {onnx_path}` first")
        if threads:
            torch.set_num_threads(threads)
        return cls(TorchBackend(model, device or ("cuda" if cuda else "cpu")), info, tile)

    def describe(self) -> str:
        return f"{Path(self.info.path).name}: {self.backend.describe()}"

    def denoise_array(self, arr: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """(H, W, C) float32 in [0, 1], C = 1 or 3 -> denoised, same shape.

        strength blends from the input (0) to the full denoise (1).
        """
        if strength == 0.0:
            return arr
        out = self._denoise_full(arr)
        return out if strength == 1.0 else (strength * out + (1.0 - strength) * arr).astype(np.float32)

    def _denoise_full(self, arr: np.ndarray) -> np.ndarray:
        c_img, c_model = arr.shape[2], self.info.channels
        chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
        if c_img == c_model:
            out = self._run(chw)
        elif c_model == 3:  # gray image, colour model: run it as a gray RGB image
            out = self._run(np.repeat(chw, 3, axis=0)).mean(axis=0, keepdims=True)
        else:  # colour image, gray model: each channel on its own
            out = np.concatenate([self._run(chw[i:i + 1]) for i in range(c_img)])
        return np.clip(out, 0.0, 1.0).transpose(1, 2, 0)

    def _run(self, chw: np.ndarray) -> np.ndarray:
        return denoise_tiled(self.backend, chw, self.tile, self.info.receptive_field, self.info.alignment,
                             self.tile_batch)

    def __call__(self, image: Any, strength: float = 1.0) -> Any:
        """Denoise a PIL image, numpy array or torch tensor; return the same type.

        strength blends from the input (0) to the full denoise (1).
        """
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        from PIL import Image

        if isinstance(image, Image.Image):
            arr, info = from_pil(image)
            return to_pil(self.denoise_array(arr, strength), info)
        if isinstance(image, np.ndarray):
            return self._call_numpy(image, strength)
        import torch

        if isinstance(image, torch.Tensor):
            batched = image.ndim == 4
            x = image if batched else image[None]
            outs = [self.denoise_array(t.detach().float().cpu().numpy().transpose(1, 2, 0), strength) for t in x]
            y = torch.from_numpy(np.stack(outs).transpose(0, 3, 1, 2)).to(image.device, image.dtype)
            return y if batched else y[0]
        raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")

    def _call_numpy(self, image: np.ndarray, strength: float) -> np.ndarray:
        dtype, shape = image.dtype, image.shape
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(dtype)
        if scale is None and not np.issubdtype(dtype, np.floating):
            raise TypeError(f"unsupported array dtype {dtype}: use uint8, uint16 or float in [0, 1]")
        arr = image.astype(np.float32) / (scale or 1.0)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got {shape}")
        alpha = arr[..., 3:] if arr.shape[2] == 4 else None
        out = self.denoise_array(np.ascontiguousarray(arr[..., :3] if alpha is not None else arr), strength)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        out = out.reshape(shape)
        if scale is None:
            return out.astype(dtype)
        return np.round(np.clip(out, 0, 1) * scale).astype(dtype)


def _info(path: Path, kind: str, meta: dict, precision: str) -> ModelInfo:
    return ModelInfo(str(path), kind, meta["model"]["channels"], meta["alignment"], meta["receptive_field"],
                     precision, meta)


def _exported_from(onnx_path: Path, checkpoint_sha: str) -> bool:
    side = Path(str(onnx_path) + ".json")
    try:
        return json.loads(side.read_text()).get("source", {}).get("sha256") == checkpoint_sha
    except (OSError, ValueError):
        return False
