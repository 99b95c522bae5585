"""Quality modes (fast = INT8, balanced = FP32, high = x8 self-ensemble), the automatic INT8
choice on the CPU with its cache, and the fast mode's measured tile margins, on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import noisy_uint8

from denoiser.cli.main import main
from denoiser.deploy.backends import TorchBackend
from denoiser.deploy.export import sidecar_path
from denoiser.run import quality as quality_mod
from denoiser.run.inference import Denoiser
from denoiser.run.quality import SelfEnsemble, measure_reach

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU auto picks PyTorch CUDA")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One ONNX cache for this module: the tiny model's INT8 export is made once."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("quality-cache")
        mp.setenv("DENOISER_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def modes(tiny_checkpoint, cache):
    return {q: Denoiser.load(tiny_checkpoint, quality=q) for q in ("fast", "balanced", "high")}


def _photo(sample_rgb, h=150, w=170, sigma=25) -> np.ndarray:
    clean = np.asarray(sample_rgb)[:h, :w]
    return noisy_uint8(clean, sigma).astype(np.float32) / 255.0


@cpu_only
def test_each_mode_runs_what_it_names(modes):
    assert modes["fast"].backend.precision == "int8" and "int8" in modes["fast"].describe()
    assert modes["balanced"].backend.precision == "fp32" and modes["balanced"].margin == modes["balanced"].info.receptive_field
    assert "x8 self-ensemble" in modes["high"].describe() and modes["high"].backend.precision == "fp32"
    assert all(dn.describe().startswith(f"quality {q}: ") for q, dn in modes.items())


@cpu_only
def test_int8_export_is_made_once_cached_and_records_its_check_and_reach(tiny_checkpoint, cache, modes):
    from denoiser.deploy.cpu_features import int8_weight_bits
    from denoiser.run.export_cache import INT8_RECIPE

    files = sorted(cache.glob("*-int8-cpu-w*.onnx"))
    assert len(files) == 1 and files[0].name.endswith(f"-w{int8_weight_bits()}-r{INT8_RECIPE}.onnx")
    side = json.loads(sidecar_path(files[0]).read_text())
    assert side["precision"] == "int8" and side["int8_weight_bits"] == int8_weight_bits()
    assert side["quality"]["budget_db"] == quality_mod.AUTO_INT8_MAX_LOSS_DB and "loss_db" in side["quality"]
    assert modes["fast"].margin == side["reach"] <= modes["fast"].info.receptive_field + modes["fast"].info.alignment
    mtime = files[0].stat().st_mtime_ns
    Denoiser.load(tiny_checkpoint, quality="fast")
    Denoiser.load(tiny_checkpoint)
    assert files[0].stat().st_mtime_ns == mtime and len(list(cache.glob("*.onnx"))) == 2  # FP32 + INT8, no more


@cpu_only
def test_auto_runs_int8_only_where_its_check_passed_and_says_which(tiny_checkpoint, cache, modes, monkeypatch):
    side = json.loads(sidecar_path(next(cache.glob("*-int8-cpu-w*.onnx"))).read_text())
    passed = side["quality"]["loss_db"] <= quality_mod.AUTO_INT8_MAX_LOSS_DB
    dn = Denoiser.load(tiny_checkpoint)
    assert dn.backend.precision == ("int8" if passed else "fp32")
    assert ("check passed" if passed else "check failed") in dn.note
    # a stricter bar than this export met: FP32, and the note says why
    monkeypatch.setattr(quality_mod, "AUTO_INT8_MAX_LOSS_DB", side["quality"]["loss_db"] - 1.0)
    strict = Denoiser.load(tiny_checkpoint)
    assert strict.backend.precision == "fp32" and "INT8 export's check failed" in strict.note
    assert "dB below FP32" in strict.note and str(cache) not in strict.note  # no server path


@cpu_only
def test_fast_tiles_with_measured_margins_agree_with_the_whole_image(modes, sample_rgb):
    dn = modes["fast"]
    img = _photo(sample_rgb)
    whole = dn.denoise_array(img)  # one call: fits the tile budget
    tiled = Denoiser(dn.backend, dn.info, tile=dn.info.alignment * 4, margin=dn.margin).denoise_array(img)
    assert dn.margin < dn.info.receptive_field + dn.info.alignment  # smaller than the exact margin...
    diff = np.abs(np.rint(whole * 255) - np.rint(tiled * 255))
    # ...yet 8-bit outputs move by one level at most, and rarely: in INT8 a tiny change can flip
    # one rounding inside the network (the shipped model's 48 px margins change no pixel at all)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02


def test_measure_reach_finds_how_far_a_model_sees():
    """A model that averages a k x k window reaches (k - 1) / 2 pixels: no further."""
    for k in (5, 9):
        conv = torch.nn.Conv2d(3, 3, k, padding=k // 2, bias=False)
        conv.weight.data.fill_(0.0)
        for c in range(3):
            conv.weight.data[c, c] = 1.0 / k**2
        run = TorchBackend(conv)
        reach = measure_reach(run, 3, alignment=1, receptive_field=k)
        assert reach == (k - 1) // 2


def test_self_ensemble_averages_the_eight_flips_and_rotations(tiny_checkpoint):
    dn = Denoiser.load(tiny_checkpoint, backend="torch")
    x = np.random.default_rng(0).random((2, 3, 24, 40), dtype=np.float32)
    expected = np.zeros_like(x)
    model = dn.backend.model
    with torch.inference_mode():
        t = torch.from_numpy(x)
        for k in range(4):
            for flip in (False, True):
                v = torch.rot90(t, k, (2, 3))
                v = v.flip(3) if flip else v
                y = model(v)
                y = y.flip(3) if flip else y
                expected += torch.rot90(y, -k, (2, 3)).numpy() / 8
    assert np.abs(SelfEnsemble(dn.backend)(x) - expected).max() < 1e-5
    assert np.abs(SelfEnsemble(dn.backend)(x) - dn.backend(x)).max() > 1e-4  # it is not the plain model


def test_high_is_tiled_exactly(tiny_checkpoint, sample_rgb):
    high = Denoiser.load(tiny_checkpoint, backend="torch", quality="high")
    img = _photo(sample_rgb, 100, 90)
    tiled = Denoiser(high.backend, high.info, tile=high.info.alignment * 3).denoise_array(img)
    assert np.abs(high.denoise_array(img) - tiled).max() < 1e-4


def test_bad_and_impossible_modes_are_refused_with_a_reason(tiny_checkpoint, tiny_onnx):
    with pytest.raises(ValueError, match="unknown quality 'medium'"):
        Denoiser.load(tiny_checkpoint, quality="medium")
    with pytest.raises(ValueError, match="runs INT8, and tiny.onnx is fp32: load the checkpoint"):
        Denoiser.load(tiny_onnx, quality="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="quality fast runs INT8 on ONNX Runtime"):
            Denoiser.load(tiny_checkpoint, backend="torch", quality="fast")


@cpu_only
def test_cli_quality_flag_and_jpeg_quality(tiny_checkpoint, cache, modes, tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "in.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(src)
    assert main(["denoise", str(src), "-o", str(tmp_path / "fast"), "--model", str(tiny_checkpoint),
                 "--quality", "fast", "--jpeg-quality", "80"]) == 0
    err = capsys.readouterr().err
    assert "model: quality fast: " in err and "int8" in err and "note: INT8 export" in err
    # a number is the JPEG quality, as before the modes
    assert main(["denoise", str(src), "-o", str(tmp_path / "n"), "--model", str(tiny_checkpoint),
                 "--quality", "30"]) == 0
    small, big = (tmp_path / "n" / "in.jpg").stat().st_size, (tmp_path / "fast" / "in.jpg").stat().st_size
    assert small < big  # quality 30 against 80
    with pytest.raises(SystemExit):
        main(["denoise", str(src), "-o", str(tmp_path / "x"), "--quality", "medium"])
    assert "choose from fast, balanced, high" in capsys.readouterr().err


@cpu_only
def test_a_cpu_run_from_the_cache_imports_neither_torch_nor_onnx(tiny_checkpoint, cache, modes, tmp_path):
    """Once exported, a CPU run reads the exports' sidecars only: importing torch and onnx cost
    1-3 s of every `denoiser denoise` on a 2-core CPU, for nothing."""
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "a.png")
    code = ("import sys; from denoiser.cli.main import main; "
            f"rc = main(['denoise', {str(tmp_path / 'a.png')!r}, '-o', {str(tmp_path / 'out')!r}, "
            f"'--model', {str(tiny_checkpoint)!r}, '--quality', 'fast']); "
            "print(rc, 'torch' in sys.modules, 'onnx' in sys.modules)")
    env = {**__import__("os").environ, "DENOISER_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.split()[-3:] == ["0", "False", "False"], out.stderr
