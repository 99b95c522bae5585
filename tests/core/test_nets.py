"""Every registered architecture, through every contract the rest of the package relies on:
shapes at odd sizes, gradients, the declared receptive field and alignment, tiling, checkpoint
round trip, ONNX export, an INT8 export within budget, gray conversion and its cost counts."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import REPO, onnxruntime_ops
from safetensors.torch import load_file

from denoiser.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from denoiser.core.config import (
    DataConfig,
    ExportConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from denoiser.core.nets import (
    ARCHS,
    arch_config,
    build_model,
    count_parameters,
    gray_from_color,
    macs_per_pixel,
)
from denoiser.core.nets.unet import UNet
from denoiser.run.tiling import denoise_tiled

TINY = {"unet": dict(width=8, levels=2), "resunet": dict(width=8, levels=2, blocks_per_level=1, unshuffle=2),
        "s2dcnn": dict(width=16, levels=4, unshuffle=2)}


def test_every_registered_architecture_has_a_tiny_test_config():
    assert set(TINY) == set(ARCHS)


def tiny(arch: str, channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch_config(arch, channels=channels, **TINY[arch]))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(1, 1), (37, 53), (16, 16)])
def test_forward_and_backward_at_any_size(arch, size):
    model = tiny(arch)
    with torch.no_grad():  # an output conv may start at zero by design (s2dcnn): no gradient behind it yet
        model.get_submodule(model.output_layer).weight.normal_(0, 0.01)
    x = torch.rand(2, 3, *size, requires_grad=True)
    y = model(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.get_submodule(model.input_layer).weight.grad.abs().sum() > 0
    assert model.get_submodule(model.output_layer).weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_receptive_field_bounds_influence_and_alignment_is_honest(arch):
    model = tiny(arch).eval()
    for p in model.parameters():  # weights large enough that influence survives the ReLUs
        p.data.normal_(0, 0.3)
    x = torch.rand(1, 3, 160, 160)
    y = x.clone()
    y[..., 80, 80] += 1.0
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    reach = max((ys - 80).abs().max().item(), (xs - 80).abs().max().item())
    assert 0 < reach <= model.receptive_field
    # an aligned crop of an aligned image sees the same grid: outputs agree away from its border
    a, r = model.alignment, model.receptive_field
    with torch.no_grad():
        whole = model(x)
        part = model(x[..., a:, a:])
    inner = slice(r + a, -r - a)
    torch.testing.assert_close(part[..., inner, inner], whole[..., a:, a:][..., inner, inner], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiled_equals_untiled(arch):
    model = tiny(arch).eval()
    img = np.random.default_rng(0).random((70, 93, 3), dtype=np.float32)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    whole = run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    tiled = denoise_tiled(run, img, tile=2 * model.alignment, margin=model.receptive_field,
                          alignment=model.alignment)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip_rebuilds_the_architecture(arch, tmp_path):
    model = tiny(arch).eval()
    path = save_checkpoint(tmp_path / f"{arch}.safetensors", model, step=3)
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg and meta["model"]["arch"] == arch
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoints_from_before_architectures_had_names_are_unets():
    path = REPO / "checkpoints" / "v1-color.safetensors"  # the v1 default, written before `arch` existed
    meta = read_metadata(path)
    assert "arch" not in meta["model"]  # written by the code before this change
    model, _ = load_checkpoint(path)
    assert type(model) is UNet and model.cfg.arch == "unet"
    # every tensor of the file is used, unchanged (load_state_dict is strict)
    tensors = load_file(str(path))
    assert set(model.state_dict()) == set(tensors)
    assert all(torch.equal(v, tensors[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ARCHS)
def test_gray_from_color_computes_the_color_model_on_gray_input(arch):
    color = tiny(arch).double().eval()
    for p in color.parameters():
        p.data.normal_(0, 0.2)
    gray = gray_from_color(color).eval()
    assert gray.cfg.channels == 1 and type(gray) is type(color)
    x = torch.rand(2, 1, 29, 35, dtype=torch.float64)
    with torch.no_grad():
        want = color(x.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
        torch.testing.assert_close(gray(x), want, atol=1e-10, rtol=1e-10)


def test_macs_are_counted_from_the_layers():
    # s2dcnn by hand: d 3x3 convs at 1/s**2 of the pixels, c*s*s -> w -> ... -> w -> c*s*s
    cfg = arch_config("s2dcnn", width=16, levels=5, unshuffle=2)
    s, w, c, d = 2, 16, 3, 5
    want = 9 * (c * s * s * w + (d - 2) * w * w + w * c * s * s) / s**2
    assert macs_per_pixel(build_model(cfg)) == pytest.approx(want)
    # the U-Net's closed form (the one the v1 model card quoted: 81.6 k MAC/px for width 24)
    unet = build_model(ModelConfig(width=24, levels=3))
    assert macs_per_pixel(unet) == pytest.approx(81648)
    assert count_parameters(unet) == sum(p.numel() for p in unet.parameters())


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown architecture 'vit'.*unet"):
        build_model(ModelConfig(arch="vit"))
    with pytest.raises(ValueError, match="choose from"):
        arch_config("vit")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each architecture trained for a few real steps, then exported to ONNX FP32."""
    from denoiser.deploy.export import export_checkpoint
    from denoiser.train.trainer import train

    out = {}
    for arch in ARCHS:
        cfg = RunConfig(model=arch_config(arch, **TINY[arch]),
                        data=DataConfig(crop=32, batch_size=4, val_count=4, val_crop=32),
                        train=TrainConfig(steps=12, val_interval=12, snapshot_interval=12, log_interval=4, threads=2,
                                          preview_count=0))
        folder = tmp_path_factory.mktemp(f"nets-{arch}")
        ckpt = train(cfg, folder / "run", progress=False)
        onnx_path = folder / f"{arch}.onnx"
        export_checkpoint(ckpt, onnx_path)
        out[arch] = (ckpt, onnx_path)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_export_matches_pytorch(trained, arch):
    from denoiser.deploy.export import read_onnx_metadata

    ckpt, onnx_path = trained[arch]
    model, _ = load_checkpoint(ckpt)
    meta = read_onnx_metadata(onnx_path)
    assert meta["model"]["arch"] == arch and meta["alignment"] == model.alignment
    assert meta["activation_bytes_per_pixel"] == model.activation_bytes_per_pixel()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 37, 53), (2, 3, 8, 12)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            ref = model(x).numpy()
        assert np.abs(sess.run(None, {"input": x.numpy()})[0] - ref).max() < 1e-4


INT8_CPU = ExportConfig(precision="int8", int8_target="cpu", calib_crops=8, calib_crop=64)


@pytest.fixture(scope="module")
def int8_cpu(trained, tmp_path_factory):
    """Each architecture's cpu-target INT8 export (what a checkpoint runs as on a CPU)."""
    from denoiser.deploy.export import export_checkpoint

    folder = tmp_path_factory.mktemp("int8-cpu")
    out = {}
    for arch, (ckpt, onnx_path) in trained.items():
        out[arch] = folder / f"{arch}-int8.onnx"
        export_checkpoint(ckpt, out[arch], INT8_CPU, from_fp32=onnx_path)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_int8_export_stays_within_its_budget(int8_cpu, arch):
    from denoiser.deploy.export import sidecar_path

    q = json.loads(sidecar_path(int8_cpu[arch]).read_text())["quality"]
    assert q["passed"] and q["loss_db"] <= INT8_CPU.int8_max_loss_db


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_int8_on_the_cpu_runs_every_conv_in_int8_but_its_float_layers(trained, int8_cpu, arch, tmp_path):
    """After ONNX Runtime's fusions, every convolution is a QLinearConv except the layers the
    export lists as float and at most the output conv (the noise estimate the output's Sub
    reads in float). A residual block's second conv, read only by the block's Add, once ran
    in float: 65 % of the v2 network's INT8 time."""
    import onnx

    from denoiser.deploy.export import sidecar_path

    convs = sum(n.op_type in ("Conv", "ConvTranspose") for n in onnx.load(str(trained[arch][1])).graph.node)
    ops = onnxruntime_ops(int8_cpu[arch], tmp_path)
    float_layers = json.loads(sidecar_path(int8_cpu[arch]).read_text())["float_layers"]
    in_float = sum(ops.count(op) for op in ("Conv", "FusedConv", "ConvTranspose"))
    assert ops.count("QLinearConv") + in_float == convs
    assert in_float <= len(float_layers) + 1, (arch, float_layers, ops)


@pytest.mark.parametrize("arch", ARCHS)
def test_denoiser_tiles_with_the_models_own_numbers(trained, arch):
    from denoiser.run.inference import Denoiser

    ckpt, _ = trained[arch]
    model, _ = load_checkpoint(ckpt)
    dn = Denoiser.load(ckpt, backend="torch", tile=2 * model.alignment)  # many tiles, each with its margin
    assert dn.info.receptive_field == model.receptive_field and dn.info.alignment == model.alignment
    img = np.random.default_rng(1).random((45, 67, 3), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(img.transpose(2, 0, 1)[None].copy())).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(dn.denoise_array(img), want, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_exports_without_recorded_activation_bytes_are_budgeted_by_their_architecture(arch):
    from denoiser.core.config import to_dict
    from denoiser.run.inference import ModelInfo

    model = tiny(arch)
    old = ModelInfo("old.onnx", "onnx", 3, model.alignment, model.receptive_field, "fp32", {"model": to_dict(model.cfg)})
    assert old.bytes_per_pixel == model.activation_bytes_per_pixel()
    legacy = {k: v for k, v in to_dict(model.cfg).items() if k not in ("arch", "unshuffle")}  # before arch existed
    if arch == "unet":
        assert ModelInfo("v1.onnx", "onnx", 3, 4, 12, "fp32", {"model": legacy}).bytes_per_pixel == \
            model.activation_bytes_per_pixel()
