"""TensorRT engines: build (runs without a GPU with TensorRT-RTX), sidecar, staleness, running;
and the pure rules that keep tiles inside an engine's profile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from denoiser.cli.main import main
from denoiser.core.atomic import file_sha256
from denoiser.core.config import ExportConfig, ModelConfig, parse_hw, parse_wh
from denoiser.core.nets.unet import UNet
from denoiser.deploy.export import export_onnx, read_onnx_metadata, sidecar_path
from denoiser.deploy.tensorrt import (
    EngineProfile,
    TensorRTRunner,
    build_engine,
    check_engine_compatible,
    fit_tile,
    import_tensorrt,
    profile_padding,
    rebuild_engine,
)

try:  # the same lookup the package does: tensorrt, else tensorrt_rtx
    _, FLAVOUR = import_tensorrt()
except RuntimeError:
    FLAVOUR = None
needs_builder = pytest.mark.skipif(FLAVOUR is None or (FLAVOUR == "tensorrt" and not torch.cuda.is_available()),
                                   reason="needs tensorrt_rtx, or tensorrt with a GPU")

# Small profile: quick to build, and big enough for the GPU test's inputs.
PROFILE = EngineProfile(min_batch=1, opt_batch=1, max_batch=2, min_hw=(16, 16), opt_hw=(64, 64), max_hw=(128, 128))
SIDECAR_FIELDS = {"flavour", "tensorrt_version", "precision", "profile", "workspace_mb", "compute_capabilities",
                  "onnx", "build_seconds", "gpu"}
FAST_INT8 = dict(calib_crops=8, calib_crop=64, auto_mixed=False)  # a tiny random model: calibration detail is moot


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random U-Net and its FP32 ONNX export (exported once: it takes 10-60 s here)."""
    torch.manual_seed(0)
    model = UNet(ModelConfig(channels=3, width=8, levels=2)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path)
    return model, path


@pytest.fixture(scope="module")
def ladder(tiny, tmp_path_factory):
    """The same model as FP32, FP16 and INT8 (TensorRT target) ONNX files."""
    model, fp32 = tiny
    folder = tmp_path_factory.mktemp("ladder")
    out = {"fp32": fp32}
    for precision, extra in (("fp16", {}), ("int8", FAST_INT8)):
        out[precision] = folder / f"tiny-{precision}.onnx"
        export_onnx(model, out[precision], ExportConfig(precision=precision, **extra), from_fp32=fp32)
    return out


@pytest.fixture(scope="module")
def fp32_engine(tiny, tmp_path_factory):
    engine = tmp_path_factory.mktemp("engine") / "tiny.engine"
    return engine, build_engine(tiny[1], engine, PROFILE, workspace_mb=256)


# --- the profile rules (pure functions: no TensorRT needed) -----------------------------------

def test_fit_tile_keeps_tile_plus_margins_inside_the_profile():
    profile = EngineProfile(max_hw=(1024, 768))
    # margin 59 rounds up to the alignment: 64 on each side
    assert fit_tile(512, 59, 8, profile) == 512  # 512 + 128 <= 768
    assert fit_tile(1024, 59, 8, profile) == 640  # 768 - 128, already aligned
    assert fit_tile(1024, 59, 16, EngineProfile(max_hw=(700, 700))) == 560  # (700 - 128) // 16 * 16
    for tile in (8, 100, 512, 4096):
        fitted = fit_tile(tile, 59, 8, profile)
        assert fitted % 8 == 0 and fitted <= tile and fitted + 2 * 64 <= min(profile.max_hw)
    with pytest.raises(ValueError, match="--max-hw"):
        fit_tile(512, 59, 8, EngineProfile(min_hw=(16, 16), opt_hw=(64, 64), max_hw=(128, 128)))


def test_profile_padding_brings_small_inputs_to_the_minimum():
    profile = EngineProfile(min_hw=(16, 32), opt_hw=(64, 64), max_hw=(128, 128))
    assert profile_padding(5, 7, profile) == (11, 25)
    assert profile_padding(16, 32, profile) == (0, 0)
    assert profile_padding(100, 128, profile) == (0, 0)
    with pytest.raises(ValueError, match="max 128x128"):
        profile_padding(129, 64, profile)


def test_parse_hw_and_profile_validation():
    assert parse_hw("512x768") == (512, 768) and parse_hw("64") == (64, 64)
    assert parse_wh("4000x3000") == (4000, 3000) and parse_wh("4000*3000") == (4000, 3000)
    with pytest.raises(ValueError, match="HxW"):
        parse_hw("big")
    with pytest.raises(ValueError, match="WxH such as 4000x3000 with positive sides"):
        parse_wh("0x10")
    with pytest.raises(ValueError, match="min <= opt <= max"):
        EngineProfile(min_hw=(256, 256), opt_hw=(128, 128))
    with pytest.raises(ValueError, match="batch"):
        EngineProfile(min_batch=2, opt_batch=1)


# --- building engines ----------------------------------------------------------------------

@needs_builder
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


@needs_builder
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_rung_of_the_ladder_builds_an_engine(ladder, precision, tmp_path):
    engine = tmp_path / f"tiny-{precision}.engine"
    side = build_engine(ladder[precision], engine, PROFILE, workspace_mb=256)
    assert engine.stat().st_size > 0
    assert side["precision"] == precision == read_onnx_metadata(ladder[precision])["precision"]
    assert side["onnx"]["sha256"] == file_sha256(ladder[precision])
    if precision == "int8":
        assert side["int8_target"] == "tensorrt"


@needs_builder
def test_cli_exports_int8_and_builds_its_engine(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    onnx_path, engine = tmp_path / "m-int8.onnx", tmp_path / "m-int8.engine"
    assert main(["export", str(tiny_checkpoint), "--precision", "int8", "--target", "tensorrt",
                 "--from-fp32", str(tiny_onnx), "--calib-crops", "8", "-o", str(onnx_path), "--engine", str(engine),
                 "--min-hw", "16x16", "--opt-hw", "96x128", "--max-hw", "192x256", "--max-batch", "3",
                 "--workspace-mb", "128"]) == 0
    side = json.loads(sidecar_path(engine).read_text())
    assert side["precision"] == "int8" and side["workspace_mb"] == 128
    assert EngineProfile.from_dict(side["profile"]) == EngineProfile(1, 1, 3, (16, 16), (96, 128), (192, 256))
    assert side["source"]["sha256"] == file_sha256(tiny_checkpoint)
    assert "int8" in capsys.readouterr().out


def test_cli_refuses_a_cpu_int8_engine_before_any_work(tiny_checkpoint, tmp_path, capsys):
    assert main(["export", str(tiny_checkpoint), "--precision", "int8", "--target", "cpu",
                 "-o", str(tmp_path / "x.onnx"), "--engine", str(tmp_path / "x.engine")]) == 2
    assert "TensorRT refuses" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@needs_builder
def test_unparsable_onnx_raises_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeError, match="could not parse"):
        build_engine(bad, tmp_path / "bad.engine", PROFILE)
    assert not (tmp_path / "bad.engine").exists()


@needs_builder
def test_bad_profile_rejected_before_building(tiny, tmp_path):
    with pytest.raises(ValueError, match="min <= opt <= max"):
        build_engine(tiny[1], tmp_path / "x.engine", EngineProfile(min_hw=(256, 256), opt_hw=(128, 128)))
    assert not (tmp_path / "x.engine").exists()


@needs_builder
def test_stale_engine_refused_with_the_command_to_rebuild_it(fp32_engine, tiny, tmp_path):
    engine = tmp_path / "stale.engine"
    shutil.copy(fp32_engine[0], engine)
    shutil.copy(tiny[1], tmp_path / "tiny.onnx")  # its ONNX beside it: rebuildable in place
    side = dict(fp32_engine[1], tensorrt_version="0.0.1", source={"checkpoint": "runs/x/model.safetensors"})
    sidecar_path(engine).write_text(json.dumps(side))
    with pytest.raises(RuntimeError, match=r"0\.0\.1") as err:
        check_engine_compatible(engine)
    msg = str(err.value)
    assert (f"denoiser export runs/x/model.safetensors --precision fp32 -o {tmp_path / 'tiny.onnx'} "
            f"--engine {engine} --min-hw 16x16 --opt-hw 64x64 --max-hw 128x128") in msg
    assert "rebuild_engine" in msg
    rebuilt = rebuild_engine(engine)  # from the ONNX beside it, same profile and workspace
    assert rebuilt["tensorrt_version"] == import_tensorrt()[0].__version__
    assert rebuilt["profile"] == fp32_engine[1]["profile"] and rebuilt["workspace_mb"] == 256
    check_engine_compatible(engine)  # accepted now
    sidecar_path(engine).unlink()
    with pytest.raises(RuntimeError, match="no sidecar"):
        check_engine_compatible(engine)


@needs_builder
def test_rtx_explicit_compute_capabilities(tiny, tmp_path):
    trt, flavour = import_tensorrt()
    if flavour != "tensorrt-rtx":
        pytest.skip("compute-capability targets are a TensorRT-RTX option")
    side = build_engine(tiny[1], tmp_path / "sm86.engine", PROFILE, compute_capabilities=["SM86", "sm_120"])
    assert side["compute_capabilities"] == ["SM86", "SM120"]
    with pytest.raises(ValueError, match="unknown compute capability"):
        build_engine(tiny[1], tmp_path / "x.engine", PROFILE, compute_capabilities=["SM99"])


def test_import_does_not_load_tensorrt():
    code = ("import sys, denoiser.deploy.tensorrt; "
            "loaded = {'tensorrt', 'tensorrt_rtx'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- running engines (GPU) ------------------------------------------------------------------

@pytest.mark.gpu
@needs_builder
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-3), ("fp16", 1e-2), ("int8", 5e-2)])
def test_runner_matches_torch(tiny, ladder, precision, atol, tmp_path):
    model, _ = tiny
    engine = tmp_path / f"{precision}.engine"
    build_engine(ladder[precision], engine, PROFILE, workspace_mb=256)
    try:
        runner = TensorRTRunner(engine)
    except RuntimeError as e:
        if "UNSUPPORTED_CC" in str(e):  # e.g. TensorRT-RTX on a data-centre GPU (H100 is SM90)
            pytest.skip(str(e))
        raise
    model = model.cuda()
    # odd sizes (the model pads), a batch over the profile's max (split), a size under its min (padded)
    for shape in [(1, 3, 64, 64), (2, 3, 37, 53), (1, 3, 128, 96), (5, 3, 40, 40), (1, 3, 9, 11)]:
        x = torch.rand(shape, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
        with torch.no_grad():
            ref = model(x)
        out = runner(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        if shape[2] >= 16:  # padded inputs differ near their bottom/right edge: compare the rest
            torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    with pytest.raises(ValueError, match="over the engine profile"):
        runner(torch.rand(1, 3, 256, 256, device="cuda"))
