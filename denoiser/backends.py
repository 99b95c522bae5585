"""Runners behind one small interface: float32 NCHW numpy batch in, same shape out.

PyTorch (CPU or CUDA), ONNX Runtime (CPU; CUDA/TensorRT providers where installed) and
TensorRT engines. Each backend names itself and its precision so the UI and reports can say
what actually ran. Heavy imports happen in the constructors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class TorchBackend:
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = "fp32"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = self.model(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()

    def describe(self) -> str:
        return f"PyTorch {self.precision} on {self.device}"


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int = 0,
                 providers: list[str] | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), opts, providers=wanted)
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        self.precision = precision

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def describe(self) -> str:
        where = "CUDA" if "CUDAExecutionProvider" in self.providers else "CPU"
        return f"ONNX Runtime {self.precision} on {where}"


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, precision: str = "unknown"):
        from .tensorrt import TensorRTRunner  # checks the engine matches this GPU and TensorRT

        self.runner = TensorRTRunner(engine_path)
        self.precision = precision

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.runner(torch.from_numpy(np.ascontiguousarray(x)).cuda())
        return y.float().cpu().numpy()

    def describe(self) -> str:
        return f"TensorRT {self.precision} engine on {torch.cuda.get_device_name()}"


def tensorrt_usable() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        from .tensorrt import import_tensorrt

        import_tensorrt()
        return True
    except (ImportError, RuntimeError):
        return False
