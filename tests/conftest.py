"""Shared fixtures: a tiny model trained for real (a few steps) and its real ONNX export.

Session-scoped because export takes seconds on a 2-core CPU; every test that needs "a model"
uses these, so the whole pipeline (train -> checkpoint -> export) runs once per test session.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from denoiser.core.config import DataConfig, ModelConfig, RunConfig, TrainConfig

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
TINY_MODEL = ModelConfig(channels=3, width=8, levels=2)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_run_config(steps: int = 8, **data) -> RunConfig:
    return RunConfig(model=TINY_MODEL,
                     data=DataConfig(crop=32, batch_size=4, val_count=4, val_crop=32, **data),
                     train=TrainConfig(steps=steps, val_interval=4, snapshot_interval=4, log_interval=2, threads=2))


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Checkpoints loaded with backend auto on a CPU get exported to an ONNX cache: keep the
    tests' exports out of the user's ~/.cache/denoiser (subprocesses inherit the variable)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DENOISER_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from denoiser.train.trainer import train

    return train(tiny_run_config(), tmp_path_factory.mktemp("tiny-run"), progress=False)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from denoiser.deploy.export import export_checkpoint

    out = tmp_path_factory.mktemp("tiny-onnx") / "tiny.onnx"
    export_checkpoint(tiny_checkpoint, out)
    return out


@pytest.fixture
def sample_rgb() -> Image.Image:
    return Image.open(DATA / "astronaut.png").convert("RGB")


def noisy_uint8(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    from denoiser.core.noise.ops import protocol_noisy_uint8

    return protocol_noisy_uint8(clean, sigma, seed)


def onnxruntime_ops(onnx_path: Path, tmp_path: Path) -> list[str]:
    """The op types ONNX Runtime's CPU provider runs for `onnx_path`, after its own fusions
    (DQ -> Conv -> Q becomes QLinearConv; a float Conv + Add, FusedConv)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / f"{onnx_path.stem}-optimized.onnx")
    ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    """Each test that takes it runs under two umasks, restored afterwards."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def file_mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
