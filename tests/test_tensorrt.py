"""TensorRT engines: build (runs without a GPU with TensorRT-RTX), sidecar, staleness, running."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from denoiser.checkpoint import file_sha256  # noqa: E402
from denoiser.config import ModelConfig  # noqa: E402
from denoiser.export import export_onnx, sidecar_path  # noqa: E402
from denoiser.model import UNet  # noqa: E402
from denoiser.tensorrt import (EngineProfile, TensorRTRunner, build_engine,  # noqa: E402
                               check_engine_compatible, import_tensorrt)

try:  # the same lookup the package does: tensorrt, else tensorrt_rtx
    _, FLAVOUR = import_tensorrt()
except RuntimeError:
    pytest.skip("neither tensorrt nor tensorrt_rtx is installed", allow_module_level=True)
if FLAVOUR == "tensorrt" and not torch.cuda.is_available():
    pytest.skip("regular TensorRT builds engines only on a GPU", allow_module_level=True)

# Small profile: quick to build, and big enough for the GPU test's inputs.
PROFILE = EngineProfile(min_batch=1, opt_batch=1, max_batch=2, min_hw=(16, 16), opt_hw=(64, 64), max_hw=(128, 128))
SIDECAR_FIELDS = {"flavour", "tensorrt_version", "precision", "profile", "workspace_mb", "compute_capabilities",
                  "onnx", "build_seconds", "gpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random U-Net and its FP32 ONNX export (exported once: it takes 10-30 s here)."""
    torch.manual_seed(0)
    model = UNet(ModelConfig(channels=3, width=8, levels=2)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path)
    return model, path


@pytest.fixture(scope="module")
def fp32_engine(tiny, tmp_path_factory):
    engine = tmp_path_factory.mktemp("engine") / "tiny.engine"
    return engine, build_engine(tiny[1], engine, PROFILE, workspace_mb=256)


def test_fp32_engine_builds_with_sidecar(tiny, fp32_engine):
    engine, side = fp32_engine
    trt, flavour = import_tensorrt()
    assert engine.stat().st_size > 0
    assert json.loads(sidecar_path(engine).read_text()) == side
    assert SIDECAR_FIELDS <= side.keys()
    assert side["flavour"] == flavour and side["tensorrt_version"] == trt.__version__
    assert side["precision"] == "fp32"  # read from the ONNX sidecar
    assert side["onnx"] == {"file": "tiny.onnx", "sha256": file_sha256(tiny[1])}
    assert EngineProfile.from_dict(side["profile"]) == PROFILE
    assert side["workspace_mb"] == 256
    assert side["model"]["width"] == 8  # carried over so the engine loads without its ONNX
    check_engine_compatible(engine)  # fresh engine: accepted
    assert not list(engine.parent.glob("*.part"))  # atomic write left no temp file


def test_bad_profile_rejected_before_building(tiny, tmp_path):
    with pytest.raises(ValueError, match="min <= opt <= max"):
        build_engine(tiny[1], tmp_path / "x.engine", EngineProfile(min_hw=(256, 256), opt_hw=(128, 128)))
    with pytest.raises(ValueError, match="batch"):
        EngineProfile(min_batch=2, opt_batch=1)
    assert not (tmp_path / "x.engine").exists()


def test_unparsable_onnx_raises_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeError, match="could not parse"):
        build_engine(bad, tmp_path / "bad.engine", PROFILE)
    assert not (tmp_path / "bad.engine").exists()


def test_stale_engine_refused(fp32_engine, tmp_path):
    engine = tmp_path / "stale.engine"
    shutil.copy(fp32_engine[0], engine)
    side = dict(fp32_engine[1], tensorrt_version="0.0.1")
    sidecar_path(engine).write_text(json.dumps(side))
    with pytest.raises(RuntimeError, match=r"0\.0\.1.*denoiser export MODEL --engine"):
        check_engine_compatible(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(RuntimeError, match="no sidecar"):
        check_engine_compatible(engine)


def test_rtx_explicit_compute_capabilities(tiny, tmp_path):
    trt, flavour = import_tensorrt()
    if flavour != "tensorrt-rtx":
        pytest.skip("compute-capability targets are a TensorRT-RTX option")
    side = build_engine(tiny[1], tmp_path / "sm86.engine", PROFILE, compute_capabilities=["SM86", "sm_120"])
    assert side["compute_capabilities"] == ["SM86", "SM120"]
    with pytest.raises(ValueError, match="unknown compute capability"):
        build_engine(tiny[1], tmp_path / "x.engine", PROFILE, compute_capabilities=["SM99"])


def test_fp16_engine_builds(tiny, tmp_path):
    float16 = pytest.importorskip("onnxconverter_common.float16")
    import onnx

    fp16 = tmp_path / "tiny_fp16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(str(tiny[1])), keep_io_types=True), str(fp16))
    sidecar_path(fp16).write_text(json.dumps({"precision": "fp16", "sha256": file_sha256(fp16)}))
    side = build_engine(fp16, tmp_path / "tiny_fp16.engine", PROFILE)
    assert (tmp_path / "tiny_fp16.engine").stat().st_size > 0
    assert side["precision"] == "fp16"


def test_import_does_not_load_tensorrt():
    code = ("import sys, denoiser.tensorrt; "
            "loaded = {'tensorrt', 'tensorrt_rtx'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runner_matches_torch(tiny, fp32_engine):
    model, _ = tiny
    try:
        runner = TensorRTRunner(fp32_engine[0])
    except RuntimeError as e:
        if "UNSUPPORTED_CC" in str(e):  # e.g. TensorRT-RTX on a data-centre GPU (H100 is SM90)
            pytest.skip(str(e))
        raise
    model = model.cuda()
    for shape in [(1, 3, 64, 64), (2, 3, 37, 53), (1, 3, 128, 96)]:  # odd sizes: the model pads
        x = torch.rand(shape, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
        with torch.no_grad():
            ref = model(x)
        out = runner(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        torch.testing.assert_close(out, ref, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="outside the engine profile"):
        runner(torch.rand(1, 3, 256, 256, device="cuda"))
