"""INT8 that fits the CPU it runs on: VNNI detection, 8-bit weights with VNNI and 7-bit ones
without, the exact rewrite that runs the U-Net's up-sampling in int8, and the CPU's peak."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from denoiser.core.config import ExportConfig
from denoiser.deploy.cpu_features import has_vnni, int8_weight_bits, peak
from denoiser.deploy.export import export_checkpoint, sidecar_path
from denoiser.deploy.int8_graph import block_upsample_as_conv
from tests.conftest import onnxruntime_ops

FAST_INT8 = dict(calib_crops=8, calib_crop=64, auto_mixed=False)


def test_vnni_is_read_from_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("DENOISER_INT8_NO_VNNI", raising=False)
    assert has_vnni(frozenset({"avx2", "avx512f", "avx512_vnni"})) and has_vnni(frozenset({"avx2", "avx_vnni"}))
    assert not has_vnni(frozenset({"avx2", "fma", "avx512f"}))
    assert int8_weight_bits(frozenset({"avx512_vnni"})) == 8 and int8_weight_bits(frozenset({"avx2"})) == 7


def test_peak_counts_cores_lanes_and_clock():
    with_vnni, without = peak(frozenset({"avx2", "fma", "avx512_vnni"})), peak(frozenset({"avx2", "fma"}))
    for p in (with_vnni, without):
        assert p.cores >= 1 and p.ghz > 0 and p.fp32_lanes == 16  # two 8-lane FMA units
        assert p.fp32_gflops == pytest.approx(p.cores * 16 * 2 * p.ghz)
    assert with_vnni.int8_gops == pytest.approx(4 * with_vnni.fp32_gflops)  # 4 int8 products per 32-bit lane
    assert without.int8_gops == pytest.approx(2 * without.fp32_gflops) and "VNNI" in with_vnni.isa


@pytest.fixture(scope="module")
def int8_files(tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """The cpu-target INT8 export with this CPU's weights, and with 7-bit ones as on a CPU without VNNI."""
    folder = tmp_path_factory.mktemp("cpu-int8")
    out = {}
    for bits in (0, 7):
        out[bits] = folder / f"w{bits}.onnx"
        cfg = ExportConfig(precision="int8", int8_target="cpu", int8_weight_bits=bits, **FAST_INT8)
        export_checkpoint(tiny_checkpoint, out[bits], cfg, from_fp32=tiny_onnx)
    return out


def _conv_weights(path) -> list[np.ndarray]:
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [w for name, w in inits.items() if name.endswith("_quantized") and w.dtype == np.int8 and w.ndim == 4]


def test_cpu_int8_uses_full_8bit_weights_only_where_the_cpu_has_vnni(int8_files):
    this_cpu = json.loads(sidecar_path(int8_files[0]).read_text())
    assert this_cpu["int8_weight_bits"] == (8 if has_vnni() else 7)
    assert json.loads(sidecar_path(int8_files[7]).read_text())["int8_weight_bits"] == 7
    widest = {bits: max(int(np.abs(w).max()) for w in _conv_weights(p)) for bits, p in int8_files.items()}
    assert widest[7] <= 64  # 7-bit: vpmaddubsw pairs cannot saturate
    if has_vnni():
        assert widest[0] == 127  # every layer's largest weight uses the whole int8 range


def test_without_vnni_the_export_makes_7bit_weights(monkeypatch, tiny_checkpoint, tiny_onnx, tmp_path):
    monkeypatch.setenv("DENOISER_INT8_NO_VNNI", "1")
    assert int8_weight_bits() == 7
    out = tmp_path / "novnni.onnx"
    side = export_checkpoint(tiny_checkpoint, out, ExportConfig(precision="int8", int8_target="cpu", **FAST_INT8),
                             from_fp32=tiny_onnx)
    assert side["int8_weight_bits"] == 7 and "reduce_range" in side["lowering"]["weights"]


def test_block_upsample_rewrite_is_exact(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    before = sum(n.op_type == "ConvTranspose" for n in model.graph.node)
    renamed = block_upsample_as_conv(model)
    assert before > 0 and len(renamed) == before
    assert not any(n.op_type == "ConvTranspose" for n in model.graph.node)
    out = tmp_path / "rewritten.onnx"
    onnx.save(model, str(out))
    x = np.random.default_rng(0).random((2, 3, 37, 53), dtype=np.float32)
    a = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(a - b).max() < 1e-5


def test_cpu_int8_graph_has_no_float_upsampling(int8_files, tmp_path):
    """After ONNX Runtime's own fusions every convolution of the file runs as QLinearConv except
    the output layer (it writes the float noise estimate)."""
    ops = onnxruntime_ops(int8_files[0], tmp_path)
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") >= 1
    assert ops.count("Conv") <= 1 and ops.count("QLinearConv") >= 5


def test_an_8bit_file_on_a_cpu_without_vnni_is_flagged(tiny_checkpoint, tiny_onnx, tmp_path, monkeypatch):
    from denoiser.run.inference import Denoiser

    out = tmp_path / "w8.onnx"
    cfg = ExportConfig(precision="int8", int8_target="cpu", int8_weight_bits=8, **FAST_INT8)
    export_checkpoint(tiny_checkpoint, out, cfg, from_fp32=tiny_onnx)
    monkeypatch.setenv("DENOISER_INT8_NO_VNNI", "1")  # as on an AVX2 CPU
    assert "lacks VNNI" in Denoiser.load(out).note and "--weight-bits 7" in Denoiser.load(out).note
    monkeypatch.delenv("DENOISER_INT8_NO_VNNI")
    if has_vnni():
        assert Denoiser.load(out).note == ""
