"""The precision ladder on ONNX Runtime: FP16 conversion, INT8 Q/DQ for both targets, the
held-out checks in the sidecar, mixed precision, and `Denoiser.load` running every rung."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import DATA
from onnx import TensorProto

from denoiser.core.checkpoint import read_checkpoint_meta
from denoiser.core.config import ExportConfig
from denoiser.core.metadata import CheckpointMeta
from denoiser.deploy.export import export_checkpoint, read_onnx_metadata, sidecar_path, with_training_noise
from denoiser.deploy.imagecheck import (
    calibration_images,
    check_images,
    folder_images,
    sample_images,
)
from denoiser.deploy.lower import calibration_batches, layer_names, zero_points
from denoiser.run.inference import Denoiser

FAST_INT8 = dict(calib_crops=8, calib_crop=64)  # enough for a tiny model, quick on 2 cores


@pytest.fixture(scope="module")
def ladder(tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """FP16, INT8 (tensorrt target) and INT8 (cpu target) lowered from the session's FP32 export."""
    folder = tmp_path_factory.mktemp("ladder")
    out = {"fp32": tiny_onnx}
    for name, cfg in (("fp16", ExportConfig(precision="fp16")),
                      ("int8", ExportConfig(precision="int8", int8_target="tensorrt", **FAST_INT8)),
                      ("int8-cpu", ExportConfig(precision="int8", int8_target="cpu", **FAST_INT8))):
        out[name] = folder / f"tiny-{name}.onnx"
        export_checkpoint(tiny_checkpoint, out[name], cfg, from_fp32=tiny_onnx)
    return out


def _side(path) -> dict:
    return json.loads(sidecar_path(path).read_text())


@pytest.mark.parametrize("name, precision, budget", [("fp32", "fp32", 0.01), ("fp16", "fp16", 0.05),
                                                     ("int8", "int8", 0.2), ("int8-cpu", "int8", 0.2)])
def test_every_rung_records_its_precision_and_psnr_on_held_out_images(ladder, name, precision, budget):
    side = _side(ladder[name])
    assert side["precision"] == read_onnx_metadata(ladder[name])["precision"] == precision
    q = side["quality"]
    assert q["images"].startswith("data/ samples (3 images)") and q["sigma"] == 25.0
    assert len(q["per_image"]) == 3 and q["budget_db"] == budget and q["passed"]
    assert abs(q["loss_db"] - (q["psnr_fp32"] - q["psnr"])) < 1e-3
    assert q["loss_db"] <= budget and q["psnr_vs_fp32"] > 35  # close to the FP32 model's own output
    assert side["check"]["passed"] and side["check"]["size"] == [37, 53]


def test_fp16_graph_keeps_io_and_image_path_in_float32(ladder):
    model = onnx.load(str(ladder["fp16"]))
    g = model.graph
    assert g.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert g.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    weights = {t.name: t.data_type for t in g.initializer}
    assert {weights[n.input[1]] for n in g.node if n.op_type in ("Conv", "ConvTranspose")} == {TensorProto.FLOAT16}
    producer = {o: n for n in g.node for o in n.output}
    sub = next(n for n in g.node if n.op_type == "Sub")
    # the residual subtraction reads the padded input itself (float32), not a float16 round trip
    assert producer[sub.input[0]].op_type == "Pad"
    assert producer[sub.input[1]].op_type == "Cast"
    assert _side(ladder["fp16"])["lowering"]["fp32_op_types"] == ["Pad", "Slice", "Sub"]


def test_int8_tensorrt_target_has_only_zero_zero_points(ladder):
    zps = zero_points(ladder["int8"])
    assert zps and all(not z.any() for z in zps.values())  # TensorRT: zero points must be 0
    activations = [z for name, z in zps.items() if "weight" not in name]
    assert activations and all(z.dtype == np.int8 for z in activations)
    model = onnx.load(str(ladder["int8"]))
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    producer = {o: n for n in model.graph.node for o in n.output}
    assert all(producer[c.input[0]].op_type == "DequantizeLinear" for c in convs)  # every conv runs int8
    scales = {t.name: t for t in model.graph.initializer}
    w_scale = scales[producer[convs[0].input[1]].input[1]]
    assert w_scale.dims[0] == 8  # per output channel (width 8)
    side = _side(ladder["int8"])
    assert side["int8_target"] == "tensorrt" and side["lowering"]["biases"] == "float32"
    # the default check set is data/, so the default calibration is procedural images only
    assert side["lowering"]["calibration"]["images"].startswith("procedural dead-leaves")
    assert "data/" not in side["lowering"]["calibration"]["images"]


def test_int8_cpu_target_uses_uint8_activations(ladder):
    zps = zero_points(ladder["int8-cpu"])
    activations = [z for name, z in zps.items() if "weight" not in name and "bias" not in name]
    assert activations and all(z.dtype == np.uint8 for z in activations)
    assert all(not z.any() for name, z in zps.items() if "weight" in name)  # weights stay symmetric
    model = onnx.load(str(ladder["int8-cpu"]))
    sub = next(n for n in model.graph.node if n.op_type == "Sub")
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer[sub.input[0]].op_type == "Pad"  # residual path left in float


@pytest.mark.parametrize("name", ["fp32", "fp16", "int8", "int8-cpu"])
def test_denoiser_loads_and_runs_every_rung(ladder, name, sample_rgb):
    dn = Denoiser.load(ladder[name])
    precision = "int8" if name.startswith("int8") else name
    assert dn.backend.name == "onnxruntime" and dn.info.precision == precision
    assert precision in dn.describe()
    ref = Denoiser.load(ladder["fp32"])
    arr = np.asarray(sample_rgb, dtype=np.float32)[:70, :90] / 255.0
    out = dn.denoise_array(arr)
    assert out.shape == arr.shape and np.abs(out - ref.denoise_array(arr)).max() < 0.05


@pytest.mark.parametrize("target, dtype", [("tensorrt", TensorProto.FLOAT16), ("cpu", TensorProto.FLOAT)])
def test_keep_float_by_layer_name(tiny_checkpoint, tiny_onnx, tmp_path, target, dtype):
    # Layers kept out of INT8 run in float16 for TensorRT (fast there), float32 on the CPU.
    out = tmp_path / f"mixed-{target}.onnx"
    cfg = ExportConfig(precision="int8", int8_target=target, keep_float=("outc", "up.1"), **FAST_INT8)
    side = export_checkpoint(tiny_checkpoint, out, cfg, from_fp32=tiny_onnx)
    assert side["float_layers"] == ["outc", "up.1"] and side["quality"]["passed"]
    assert side["float_precision"] == read_onnx_metadata(out)["float_precision"] == ("fp16" if target == "tensorrt"
                                                                                     else "fp32")
    model = onnx.load(str(out))
    producer = {o: n for n in model.graph.node for o in n.output}
    weights = {t.name: t for t in model.graph.initializer}
    for node, layer in layer_names(model).items():
        conv = next(n for n in model.graph.node if n.name == node)
        if layer not in ("outc", "up.1"):  # int8: weights and input through DQ
            assert producer[conv.input[1]].op_type == producer[conv.input[0]].op_type == "DequantizeLinear"
            continue
        assert weights[conv.input[1]].data_type == dtype  # float weights, never quantized
        # TensorRT: a float input too. CPU: ONNX Runtime folded the ReLU before it into a Q, so
        # only the DQ output is that ReLU's output: the conv reads it (its math stays float).
        from_dq = conv.input[0] in producer and producer[conv.input[0]].op_type == "DequantizeLinear"
        assert from_dq == (target == "cpu")


def test_keep_float_rejects_unknown_layers(tiny_checkpoint, tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="no convolution named nope"):
        export_checkpoint(tiny_checkpoint, tmp_path / "x.onnx", ExportConfig(precision="fp16", keep_float=("nope",)),
                          from_fp32=tiny_onnx)


def test_int8_over_budget_finds_and_reports_sensitive_layers(tiny_checkpoint, tiny_onnx, tmp_path):
    # An impossible budget forces the search all the way: it must name the layers it kept in float.
    out = tmp_path / "strict.onnx"
    cfg = ExportConfig(precision="int8", int8_max_loss_db=-1.0, max_float_layers=2, **FAST_INT8)
    with pytest.raises(RuntimeError, match="loses .* dB PSNR against FP32"):
        export_checkpoint(tiny_checkpoint, out, cfg, from_fp32=tiny_onnx)
    side = _side(out)  # written before the error, so the numbers can be read
    assert 1 <= len(side["float_layers"]) <= 2 and not side["quality"]["passed"]
    trials = side["lowering"]["sensitivity"]["trials"]
    n_convs = len(layer_names(tiny_onnx))
    assert len(trials) == 1 + n_convs + 2  # all int8, each conv alone in float, then 1 and 2 kept
    # kept: the best of the trials with 1 and 2 layers out of INT8
    best = min(trials[-2:], key=lambda t: t["loss_db"])
    assert best["float_layers"] == side["float_layers"] == read_onnx_metadata(out)["float_layers"]


def test_calibration_never_uses_the_check_images():
    checks = sample_images()
    calib = calibration_images(None, checks)
    assert not set(calib.files) & set(checks.files) and len(calib.images) >= 24
    assert check_images(None).files == checks.files
    assert not any("noisy_" in f for f in checks.files)  # a noisy file is not a clean reference
    with pytest.raises(ValueError, match="no calibration images left"):
        calibration_images(DATA, folder_images(DATA))


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_calibration_crops_carry_the_noise_spec_in_their_share(share):
    flat = [np.full((80, 70, 3), 128, np.uint8), np.full((90, 100, 3), 128, np.uint8)]
    # "gaussian:0" leaves its crops clean, so they are the only constant ones
    batches = calibration_batches(flat, 12, 64, (5.0, 25.0), seed=3, noise="gaussian:0", noise_share=share)
    crops = np.concatenate(batches)
    assert crops.shape == (12, 3, 64, 64) and crops.dtype == np.float32
    assert np.array_equal(np.round(crops * 255), crops * 255)  # 8-bit values, as users' files have
    clean = [bool(np.all(c == np.float32(128 / 255))) for c in crops]
    assert sum(clean) == round(12 * share)
    assert not any(clean[: int(1 / share) - 1])  # spread evenly: the first ones are the protocol's
    again = np.concatenate(calibration_batches(flat, 12, 64, (5.0, 25.0), seed=3, noise="gaussian:0",
                                               noise_share=share))
    assert np.array_equal(crops, again)  # seeded: an export calibrates the same way twice
    gaussian_only = np.concatenate(calibration_batches(flat, 12, 64, (5.0, 25.0), seed=3))
    assert not any(bool(np.all(c == np.float32(128 / 255))) for c in gaussian_only)


def test_int8_calibration_noise_auto_is_the_checkpoints_training_mix(ladder, tiny_checkpoint, tiny_onnx, tmp_path):
    assert _side(ladder["int8-cpu"])["lowering"]["calibration"]["noise"] is None  # default: Gaussian crops only
    out = tmp_path / "tiny-int8-mix.onnx"
    export_checkpoint(tiny_checkpoint, out, ExportConfig(precision="int8", int8_target="cpu", calib_noise="auto",
                                                         auto_mixed=False, **FAST_INT8), from_fp32=tiny_onnx)
    calib = _side(out)["lowering"]["calibration"]
    assert calib["noise"] == read_checkpoint_meta(tiny_checkpoint).run["noise"]["spec"] and calib["noise_share"] == 0.5
    assert _side(out)["quality"]["passed"]


def test_training_noise_resolution():
    meta = CheckpointMeta(format="denoiser", run={"noise": {"spec": "gaussian:0-75|camera"}})
    auto = ExportConfig(precision="int8", calib_noise="auto")
    assert with_training_noise(auto, meta).calib_noise == "gaussian:0-75|camera"
    assert with_training_noise(ExportConfig(calib_noise=None), meta).calib_noise is None  # asked for Gaussian
    assert with_training_noise(ExportConfig(calib_noise="poisson-gaussian"), meta).calib_noise == "poisson-gaussian"
    for run in (None, {}, {"noise": "gaussian"}, {"noise": {"spec": "hologram:3"}}):  # none, or not one we parse
        assert with_training_noise(auto, CheckpointMeta(format="denoiser", run=run)).calib_noise is None
    assert with_training_noise(auto, None).calib_noise is None


def test_lowering_refuses_an_fp32_file_of_other_weights(tiny_checkpoint, tiny_onnx, tmp_path):
    from onnx import numpy_helper

    model = onnx.load(str(tiny_onnx))
    w = next(t for t in model.graph.initializer if t.name == "outc.weight")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 2, w.name))  # other weights, same graph
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    with pytest.raises(ValueError, match="not an FP32 export of this model"):
        export_checkpoint(tiny_checkpoint, tmp_path / "x-fp16.onnx", ExportConfig(precision="fp16"), from_fp32=other)
