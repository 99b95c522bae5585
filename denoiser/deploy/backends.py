"""Runners behind one small interface: float32 NCHW numpy batch in, same shape out.

PyTorch (CPU or CUDA), ONNX Runtime (CPU; CUDA/TensorRT providers where installed) and
TensorRT engines. Each backend names itself and its precision so the UI and reports can say
what actually ran. Heavy imports happen in the constructors (torch too: a CPU run on ONNX
Runtime never imports it, which saves a second or two of every `denoiser denoise`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class TorchBackend:
    name = "torch"

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
        self.precision = precision or meta.get("precision", "fp32")
        self.int8_target = meta.get("int8_target") if self.precision == "int8" else None

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

    def __init__(self, engine_path: str | Path, precision: str | None = None):
        from denoiser.deploy.tensorrt import (
            TensorRTRunner,  # checks the engine matches this GPU and TensorRT
        )

        self.runner = TensorRTRunner(engine_path)
        self.profile = self.runner.profile
        self.precision = precision if precision not in (None, "unknown") else self.runner.meta.get("precision", "unknown")

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
