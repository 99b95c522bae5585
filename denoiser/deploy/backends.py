"""Runners behind one small interface: float32 NCHW numpy batch in, same shape out.

PyTorch (CPU or CUDA), ONNX Runtime (CPU; CUDA/TensorRT providers where installed) and
TensorRT engines. Each backend names itself and its precision so the UI and reports can say
what actually ran. Heavy imports happen in the constructors (torch too: a CPU run on ONNX
Runtime never imports it, which saves a second or two of every `denoiser denoise`).

Each backend declares what it runs: `artifacts` (the kinds of file: a .safetensors
checkpoint, an .onnx export, an .engine), `precisions`, and `available()` (its packages, and
CUDA where it needs it, on this machine). `choose_backends` is the one place where a
requested backend, "auto" included, becomes the backends that run an artifact.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from denoiser.core.metadata import ExportMeta

if TYPE_CHECKING:
    import torch


ARTIFACT_KINDS = {".safetensors": "checkpoint", ".onnx": "onnx", ".engine": "engine"}
PRECISIONS = ("fp32", "fp16", "int8")  # what our exports are (export.PRECISIONS; this module imports no torch)


class TorchBackend:
    name = "torch"
    artifacts = ("checkpoint",)
    precisions = ("fp32",)  # quality fast on a GPU wraps it in float16 autocast (quality.py)

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("torch") is not None

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = "fp32"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.model(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()

    def describe(self) -> str:
        return f"PyTorch {self.precision} on {self.device}"


class OnnxRuntimeBackend:
    """An exported ONNX file (FP32, FP16 or INT8 Q/DQ) on ONNX Runtime.

    Providers: short names ("tensorrt", "cuda", "cpu") or ONNX Runtime's own, in order of
    preference; by default CUDA where that ONNX Runtime build has it, else the CPU. The
    TensorRT provider builds its own engine at session start, so it runs only when asked for.
    """

    name = "onnxruntime"
    artifacts = ("checkpoint", "onnx")  # a checkpoint runs as its ONNX export (run/export_cache.py)
    precisions = PRECISIONS
    PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "cpu": "CPUExecutionProvider"}

    def __init__(self, path: str | Path, precision: str | None = None, threads: int = 0,
                 providers: list[str] | None = None, meta: dict | None = None):
        """`meta`: the file's metadata where the caller has it (its sidecar): no `onnx` import."""
        import onnxruntime as ort

        if meta is None:
            from denoiser.deploy.export import read_onnx_metadata

            meta = read_onnx_metadata(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # Idle pool threads sleep instead of spinning: our tiles are few, long calls (no wake-up
        # latency to hide), and a spinning thread takes a core from our JPEG/PNG encoder threads
        # and from anything else on a small machine. Measured, INT8 1 MP on 2 cores: 0.86 s
        # against 0.97 s alone, 1.20 s against 1.38 s beside a busy encoder. DENOISER_ORT_SPIN=1: spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get("DENOISER_ORT_SPIN", "0"))
        available = ort.get_available_providers()
        if providers:
            wanted = [self.PROVIDERS.get(p.lower(), p) for p in providers]
            missing = [p for p in wanted if p not in available]
            if missing:
                raise RuntimeError(f"ONNX Runtime here lacks {', '.join(missing)} (it has {', '.join(available)})")
        else:
            wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=wanted)
        except Exception as e:  # a graph ONNX Runtime cannot run: say so in a line, not a traceback
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise RuntimeError(f"{Path(path).name}: ONNX Runtime cannot load this file ({first_line})") from None
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        record = ExportMeta.from_dict(meta, path) if meta else None  # {}: the caller named the precision
        self.precision = precision or (record and record.precision) or "fp32"
        self.int8_target = record.int8_target if record and self.precision == "int8" else None

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def describe(self) -> str:
        where = {"TensorrtExecutionProvider": "TensorRT", "CUDAExecutionProvider": "CUDA"}.get(self.providers[0], "CPU")
        kind = f"{self.precision} ({self.int8_target} target)" if self.int8_target else self.precision
        return f"ONNX Runtime {kind} on {where}"


class TensorRTBackend:
    """A TensorRT engine (refused unless it matches this GPU and TensorRT). `profile` is the
    range of tile shapes it takes: see tensorrt.fit_tile."""

    name = "tensorrt"
    artifacts = ("engine",)
    precisions = PRECISIONS

    @staticmethod
    def available() -> bool:
        return tensorrt_usable()

    def __init__(self, engine_path: str | Path, precision: str | None = None):
        from denoiser.deploy.tensorrt import (
            TensorRTRunner,  # checks the engine matches this GPU and TensorRT
        )

        self.runner = TensorRTRunner(engine_path)
        self.profile = self.runner.profile
        self.precision = precision if precision not in (None, "unknown") else (self.runner.meta.precision or "unknown")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        y = self.runner(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return y.cpu().numpy()

    def describe(self) -> str:
        import torch

        return f"TensorRT {self.precision} engine ({self.runner.flavour}) on {torch.cuda.get_device_name()}"


def tensorrt_usable() -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        from denoiser.deploy.tensorrt import import_tensorrt

        import_tensorrt()
        return True
    except (ImportError, RuntimeError):
        return False


def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch where no NVIDIA driver is loaded."""
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()) and sys.platform == "linux":
        return False
    import torch

    return torch.cuda.is_available()


BACKENDS = {b.name: b for b in (TorchBackend, OnnxRuntimeBackend, TensorRTBackend)}
BACKEND_CHOICES = ("auto", *BACKENDS)  # what --backend and the app offer


def artifact_kind(path: str | Path) -> str:
    """"checkpoint", "onnx" or "engine", from the file's name."""
    kind = ARTIFACT_KINDS.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: expected a .safetensors checkpoint, an .onnx file or an .engine")
    return kind


def _refusal(backend: str, kind: str, path: str | Path) -> str:
    """Why `backend` does not run this kind of file, and what does."""
    if kind == "engine":
        return "a TensorRT engine runs only on the tensorrt backend"
    if kind == "onnx":
        return f"an ONNX file runs on the onnxruntime backend, not {backend!r}"
    return (f"the {backend} backend runs engines: build one with "
            f"`denoiser export {path} --engine OUT.engine` and load that")


def choose_backends(path: str | Path, requested: str = "auto", device: str | None = None,
                    cuda: bool | None = None) -> tuple[str, ...]:
    """The backends that run the artifact at `path`, in order of preference: the first that
    loads runs it, a later one only where the one before it failed. A backend named in
    `requested` is the only one, or a ValueError says why it cannot run this file.

    "auto": an engine on TensorRT, an ONNX file on ONNX Runtime; a checkpoint on PyTorch
    where CUDA is there (and `device` is not a CPU), else on ONNX Runtime, which runs our
    U-Nets 2-3x faster than PyTorch on a CPU (BENCHMARKS.md), with PyTorch behind it for
    when the ONNX export cannot be made (onnx or onnxscript missing). `cuda`: None = look.
    """
    if requested not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {requested!r}; choose from {', '.join(BACKEND_CHOICES)}")
    kind = artifact_kind(path)
    if requested != "auto":
        if kind not in BACKENDS[requested].artifacts:
            raise ValueError(_refusal(requested, kind, path))
        return (requested,)
    if kind != "checkpoint":
        return tuple(name for name, b in BACKENDS.items() if kind in b.artifacts)
    if cuda is None:
        cuda = cuda_available() and not (device or "").startswith("cpu")
    return ("torch",) if cuda else ("onnxruntime", "torch")


def check_precision(backend: str, precision: str, path: str | Path) -> None:
    """Refuse a file whose metadata names a precision the backend does not run ("unknown":
    an engine built from an ONNX file without its sidecar, taken as it is)."""
    allowed = BACKENDS[backend].precisions
    if precision != "unknown" and precision not in allowed:
        raise ValueError(f"{path}: precision {precision!r} is not one the {backend} backend runs "
                         f"({', '.join(allowed)})")
