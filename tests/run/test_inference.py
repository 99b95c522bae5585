import numpy as np
import pytest
import torch
from PIL import Image

from denoiser.core.config import ModelConfig
from denoiser.core.nets.unet import UNet
from denoiser.deploy.backends import TorchBackend
from denoiser.run.inference import Denoiser, ModelInfo
from denoiser.run.tiling import denoise_tiled, plan_tiles, tile_boxes


@pytest.fixture(scope="module")
def both(tiny_checkpoint, tiny_onnx):
    return Denoiser.load(tiny_checkpoint, backend="torch"), Denoiser.load(tiny_onnx)


def test_load_picks_the_backend_the_artifact_needs(both):
    torch_dn, ort_dn = both
    assert torch_dn.backend.name == "torch" and ort_dn.backend.name == "onnxruntime"


def test_torch_and_onnxruntime_agree(both, sample_rgb):
    torch_dn, ort_dn = both
    arr = np.asarray(sample_rgb, dtype=np.float32)[:101, :77] / 255.0  # odd size
    assert np.abs(torch_dn.denoise_array(arr) - ort_dn.denoise_array(arr)).max() < 1e-3
    a = np.asarray(torch_dn(sample_rgb), dtype=int)
    b = np.asarray(ort_dn(sample_rgb), dtype=int)
    assert np.abs(a - b).max() <= 1  # 8-bit rounding may differ by one level


def test_returns_the_type_it_was_given(both):
    dn = both[1]
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 255, (30, 41, 3), dtype=np.uint8)
    u16 = rng.integers(0, 65535, (30, 41), dtype=np.uint16)
    f32 = rng.random((30, 41, 3), dtype=np.float32)
    rgba = rng.integers(0, 255, (30, 41, 4), dtype=np.uint8)
    for arr in (u8, u16, f32, rgba):
        out = dn(arr)
        assert out.dtype == arr.dtype and out.shape == arr.shape
    assert np.array_equal(dn(rgba)[..., 3], rgba[..., 3])  # alpha untouched
    t = torch.rand(3, 30, 41)
    assert dn(t).shape == t.shape and isinstance(dn(t), torch.Tensor)
    gray = Image.fromarray(u8[..., 0], "L")
    assert dn(gray).mode == "L" and dn(gray).size == gray.size


def test_more_input_types_keep_their_type(both):
    dn = both[1]
    rng = np.random.default_rng(2)
    f64 = rng.random((20, 21), dtype=np.float64)
    assert dn(f64).dtype == np.float64 and dn(f64).shape == f64.shape
    gray_alpha = rng.integers(0, 65535, (20, 21, 2), dtype=np.uint16)
    assert np.array_equal(dn(gray_alpha)[..., 1], gray_alpha[..., 1])
    t8 = torch.randint(0, 256, (2, 3, 20, 21), dtype=torch.uint8)
    out8 = dn(t8)
    assert out8.dtype == torch.uint8 and out8.shape == t8.shape
    assert np.array_equal(out8[1].permute(1, 2, 0).numpy(), dn(t8[1].permute(1, 2, 0).numpy()))
    t16 = torch.rand(3, 20, 21, dtype=torch.float16)
    assert dn(t16).dtype == torch.float16
    pil16 = Image.fromarray(rng.integers(0, 65535, (20, 21), dtype=np.uint16))
    assert dn(pil16).mode == "I;16"
    rgba = Image.fromarray(rng.integers(0, 255, (20, 21, 4), dtype=np.uint8))
    assert dn(rgba).mode == "RGBA" and np.array_equal(np.asarray(dn(rgba))[..., 3], np.asarray(rgba)[..., 3])
    with pytest.raises(TypeError):
        dn(np.zeros((4, 4), np.int32))


def test_gray_model_runs_colour_images_channel_by_channel():
    model = UNet(ModelConfig(channels=1, width=4, levels=1)).eval()
    info = ModelInfo("gray.safetensors", "checkpoint", 1, model.alignment, model.receptive_field, "fp32",
                     {"model": {"channels": 1, "width": 4}})
    dn = Denoiser(TorchBackend(model), info)
    rgb = np.random.default_rng(3).random((17, 13, 3), dtype=np.float32)
    per_channel = np.concatenate([dn.denoise_array(rgb[..., i:i + 1]) for i in range(3)], axis=2)
    assert np.abs(dn.denoise_array(rgb) - per_channel).max() < 1e-6


def channel_mixer() -> torch.nn.Conv2d:
    """A colour "model" whose three outputs differ for a gray input: each output channel its
    own mix of the inputs plus its own offset (1x1 convolution: any tile gives the same)."""
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[0.2, 0.1, 0.0], [0.3, 0.5, 0.4], [0.0, 0.1, 0.8]])[..., None, None])
        conv.bias.copy_(torch.tensor([0.05, -0.02, 0.1]))
    return conv.eval()


def test_a_gray_image_on_a_colour_model_is_the_channel_mean_of_its_gray_rgb_output():
    model = channel_mixer()
    info = ModelInfo("colour.safetensors", "checkpoint", 3, 1, 0, "fp32", {"model": {"channels": 3, "width": 4}})
    dn = Denoiser(TorchBackend(model), info)
    gray = np.random.default_rng(5).random((19, 23, 1), dtype=np.float32)
    with torch.inference_mode():
        rgb_out = model(torch.from_numpy(np.repeat(gray, 3, axis=2).transpose(2, 0, 1)[None].copy()))[0]
    rgb_out = rgb_out.numpy().transpose(1, 2, 0)
    mean, first = rgb_out.mean(axis=2, keepdims=True), rgb_out[..., :1]
    assert np.abs(mean - first).mean() > 0.1  # the model's channels differ: "first channel" would fail below
    out = dn.denoise_array(gray)
    assert out.shape == gray.shape
    np.testing.assert_allclose(out, np.clip(mean, 0, 1), atol=1e-6)
    u8 = (gray[..., 0] * 255).round().astype(np.uint8)  # through the public call too, as a PIL gray image
    got = np.asarray(dn(Image.fromarray(u8, "L")), dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(np.repeat(u8[None, None] / np.float32(255), 3, axis=1))).numpy()[0]
    assert np.abs(got - np.rint(np.clip(ref.mean(axis=0), 0, 1) * 255)).max() <= 1


class NoiseLevelModel(torch.nn.Module):
    """A stand-in non-blind model: scales the image by (1 - the noise-level channel)."""

    def forward(self, x):
        return x[:, :3] * (1 - x[:, 3:])


def test_sigma_goes_to_models_that_take_it_and_is_refused_by_blind_ones(both):
    with pytest.raises(ValueError, match="blind"):
        both[0].denoise_array(np.zeros((8, 8, 3), np.float32), sigma=25)
    info = ModelInfo("nonblind.onnx", "onnx", 3, 1, 0, "fp32", {"model": {"width": 4, "noise_level_input": True}})
    dn = Denoiser(TorchBackend(NoiseLevelModel()), info)
    arr = np.full((9, 7, 3), 0.5, np.float32)
    assert np.allclose(dn.denoise_array(arr, sigma=51), 0.5 * (1 - 51 / 255))
    with pytest.raises(ValueError, match="needs the noise level"):
        dn.denoise_array(arr)


def test_auto_on_the_cpu_exports_the_checkpoint_to_onnx_once(tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("DENOISER_CACHE", str(tmp_path / "cache"))
    if torch.cuda.is_available():
        pytest.skip("auto picks PyTorch CUDA on a GPU")
    dn = Denoiser.load(tiny_checkpoint, quality="balanced")  # FP32 (the automatic INT8: test_quality.py)
    assert dn.backend.name == "onnxruntime"
    cached = list((tmp_path / "cache").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".json").exists()
    mtime = cached[0].stat().st_mtime_ns
    again = Denoiser.load(tiny_checkpoint, quality="balanced")
    assert again.backend.name == "onnxruntime" and cached[0].stat().st_mtime_ns == mtime  # no second export
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp folder left
    arr = np.random.default_rng(4).random((40, 33, 3), dtype=np.float32)
    ref = Denoiser.load(tiny_checkpoint, backend="torch").denoise_array(arr)
    assert np.abs(again.denoise_array(arr) - ref).max() < 1e-4


def test_strength_blends_input_and_denoised(both):
    dn = both[0]
    arr = np.random.default_rng(1).random((24, 24, 3), dtype=np.float32)
    full = dn.denoise_array(arr)
    assert np.array_equal(dn.denoise_array(arr, 0.0), arr)
    assert np.allclose(dn.denoise_array(arr, 0.25), 0.25 * full + 0.75 * arr, atol=1e-6)
    with pytest.raises(ValueError):
        dn(arr, strength=1.5)


def test_tiled_equals_untiled():
    model = UNet(ModelConfig(width=4, levels=3)).eval()
    run = TorchBackend(model)
    img = np.random.default_rng(0).random((301, 262, 3), dtype=np.float32)
    whole = run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    calls = []
    tiled = denoise_tiled(lambda x: calls.append(x.shape) or run(x), img, tile=48, margin=model.receptive_field,
                          alignment=model.alignment, batch=2)
    assert len(calls) > 4 and max(c[0] for c in calls) == 2  # really tiled, tiles in batches
    assert np.abs(whole - tiled).max() < 1e-3


def test_tiled_equals_untiled_on_a_photo_through_the_memory_budget(tiny_checkpoint, sample_rgb):
    arr = np.asarray(sample_rgb, dtype=np.float32)[:203, :190] / 255.0
    whole = Denoiser.load(tiny_checkpoint, backend="torch", memory_mb=1024)
    tiled = Denoiser.load(tiny_checkpoint, backend="torch", memory_mb=3)  # a budget that forces small tiles
    assert whole.tile >= 203 and tiled.tile < 64
    assert np.abs(whole.denoise_array(arr) - tiled.denoise_array(arr)).max() < 1e-3


class ProfiledBackend:
    """A backend with a TensorRT-style shape profile (what TensorRTBackend exposes), run by PyTorch."""

    def __init__(self, model, profile):
        self.run, self.profile, self.shapes = TorchBackend(model), profile, []

    def __call__(self, x):
        self.shapes.append(x.shape)
        return self.run(x)


def test_tiles_stay_inside_an_engine_profile():
    from denoiser.core.config import EngineProfile

    model = UNet(ModelConfig(width=4, levels=2)).eval()
    profile = EngineProfile(min_batch=1, opt_batch=1, max_batch=2, min_hw=(16, 16), opt_hw=(128, 128),
                            max_hw=(160, 160))
    backend = ProfiledBackend(model, profile)
    info = ModelInfo("m.engine", "engine", 3, model.alignment, model.receptive_field, "fp32", {"model": {"width": 4}})
    dn = Denoiser(backend, info, memory_mb=4096)  # the budget alone would allow one huge tile
    img = np.random.default_rng(5).random((90, 420, 3), dtype=np.float32)  # small in pixels, wide
    out = dn.denoise_array(img)
    assert all(b <= 2 and h <= 160 and w <= 160 for b, _, h, w in backend.shapes)
    whole = TorchBackend(model)(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    assert np.abs(out - np.clip(whole, 0, 1)).max() < 1e-3


def test_receptive_field_is_an_upper_bound():
    """Tiling is exact only if no output pixel sees further than the declared receptive field."""
    torch.manual_seed(0)  # a random init can leave every ReLU on the path dead: reach 0
    model = UNet(ModelConfig(width=8, levels=3)).eval()
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    model(x)[0, :, 80, 80].sum().backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    reach = max((rows - 80).abs().max(), (cols - 80).abs().max())
    assert 0 < reach <= model.receptive_field


BPP = UNet(ModelConfig(width=24)).activation_bytes_per_pixel()  # what the tile plan budgets with


def test_tile_plan_follows_the_memory_budget():
    small, big = plan_tiles(64, BPP, 59, 8), plan_tiles(1024, BPP, 59, 8)
    assert small[0] < big[0] and small[0] % 8 == 0 and big[0] % 8 == 0
    for budget in (64, 1024):
        tile, batch = plan_tiles(budget, BPP, 59, 8)
        assert batch * (tile + 128) ** 2 * BPP <= budget * 2**20
    tile, batch = plan_tiles(1024, BPP, 59, 8, tile=256)  # a given tile: the budget sets the batch
    assert tile == 256 and 1 < batch and batch * 384**2 * BPP <= 1024 * 2**20


def test_tiles_cover_every_pixel_once():
    cover = np.zeros((203, 150), int)
    for (y0, y1, x0, x1), _ in tile_boxes(203, 150, 64, 16):
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError):
        Denoiser.load(tmp_path / "nope.safetensors")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a .safetensors"):
        Denoiser.load(tmp_path / "m.pt")


def test_default_model_sends_gray_images_to_the_shipped_gray_model(monkeypatch):
    from denoiser.run.inference import DEFAULT_GRAY_MODEL, DEFAULT_MODEL

    monkeypatch.delenv("DENOISER_MODEL", raising=False)
    rng = np.random.default_rng(0)
    gray = rng.random((40, 48, 1), dtype=np.float32)
    colour = rng.random((40, 48, 3), dtype=np.float32)
    dn = Denoiser.load(backend="torch")
    assert dn.info.path == str(DEFAULT_MODEL) and dn.gray_path == DEFAULT_GRAY_MODEL
    assert DEFAULT_GRAY_MODEL.name in dn.describe()
    gray_dn = Denoiser.load(DEFAULT_GRAY_MODEL, backend="torch")
    colour_dn = Denoiser.load(DEFAULT_MODEL, backend="torch")
    assert colour_dn.gray_path is None  # a model named explicitly runs everything itself
    np.testing.assert_array_equal(dn.denoise_array(gray), gray_dn.denoise_array(gray))
    np.testing.assert_array_equal(dn.denoise_array(colour), colour_dn.denoise_array(colour))
    assert not np.array_equal(colour_dn.denoise_array(gray), gray_dn.denoise_array(gray))
    # the same through the public call on a PIL "L" image
    img = Image.fromarray((gray[..., 0] * 255).astype(np.uint8), "L")
    assert np.array_equal(np.asarray(dn(img)), np.asarray(gray_dn(img)))
    # a gray picture saved as RGB (three equal channels) is gray too, and stays RGB
    rgb_gray = np.repeat(gray, 3, axis=2)
    out = dn.denoise_array(rgb_gray)
    assert out.shape == rgb_gray.shape
    np.testing.assert_array_equal(out, np.repeat(gray_dn.denoise_array(gray), 3, axis=2))
    assert np.array_equal(np.asarray(dn(img.convert("RGB"))), np.asarray(gray_dn(img.convert("RGB")))[..., :1]
                          .repeat(3, axis=2))
    # one differing pixel makes it a colour image again
    nearly = rgb_gray.copy()
    nearly[-1, -1, 2] = 1.0 - nearly[-1, -1, 2]
    np.testing.assert_array_equal(dn.denoise_array(nearly), colour_dn.denoise_array(nearly))


def test_any_model_can_be_paired_with_a_gray_model(tiny_checkpoint, tmp_path):
    from denoiser.run.inference import DEFAULT_GRAY_MODEL

    with pytest.raises(FileNotFoundError, match="gray model not found"):
        Denoiser.load(tiny_checkpoint, backend="torch", gray_model=tmp_path / "nope.safetensors")
    dn = Denoiser.load(tiny_checkpoint, backend="torch", gray_model=DEFAULT_GRAY_MODEL)
    tiny = Denoiser.load(tiny_checkpoint, backend="torch")
    gray_dn = Denoiser.load(DEFAULT_GRAY_MODEL, backend="torch")
    rng = np.random.default_rng(1)
    gray, colour = rng.random((24, 40, 1), dtype=np.float32), rng.random((24, 40, 3), dtype=np.float32)
    np.testing.assert_array_equal(dn.denoise_array(gray), gray_dn.denoise_array(gray))
    np.testing.assert_array_equal(dn.denoise_array(colour), tiny.denoise_array(colour))


def test_a_chosen_default_model_is_not_overridden_for_gray(monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("DENOISER_MODEL", str(tiny_checkpoint))
    dn = Denoiser.load(backend="torch")
    assert dn.info.path == str(tiny_checkpoint) and dn.gray_path is None


def test_outputs_that_are_not_finite_are_refused_not_written(tiny_checkpoint, tmp_path, capsys):
    """Weights that pass the load-time checks but blow up (here every weight x1000, infinite
    outputs) fail the file with a message, instead of exit 0, "ok" and an all-black image."""
    from safetensors import safe_open
    from test_checkpoint import resave

    from denoiser.cli.main import main

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        weights = [k for k in f.keys() if not k.startswith(("opt.", "ema.", "rng."))]
    broken = resave(tiny_checkpoint, tmp_path / "broken.safetensors", scale={k: 1000.0 for k in weights})
    Image.fromarray(np.full((24, 20, 3), 128, np.uint8)).save(tmp_path / "in.png")
    code = main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(broken),
                 "--backend", "torch"])
    assert code == 1 and "broken.safetensors gave values that are not finite" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    with pytest.raises(ValueError, match="not finite or far outside an image's range"):
        Denoiser.load(broken, backend="torch")(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="the image holds values that are not finite"):  # not the model's fault
        Denoiser.load(tiny_checkpoint, backend="torch")(np.full((8, 8, 3), np.nan, np.float32))


def test_onnx_files_that_are_not_our_exports_get_a_message(tiny_onnx, tmp_path, capsys):
    import json

    import onnx

    from denoiser.cli.main import main

    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    (tmp_path / "garbage.onnx").write_bytes(bytes(range(256)) * 40)
    proto = onnx.load(str(tiny_onnx))
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == "denoiser"))
    cases = {"garbage.onnx": "not a readable ONNX file", "bare.onnx": "without denoiser metadata",
             "partial.onnx": "damaged denoiser metadata (KeyError: 'alignment')",
             "huge.onnx": "damaged denoiser metadata (ValueError: model levels 100",
             "text.onnx": "damaged denoiser metadata in the ONNX file (not a JSON object)",
             "bogus.onnx": "ONNX Runtime cannot load this file"}
    for name, props in {"bare.onnx": None, "partial.onnx": {"model": meta["model"]},
                        "huge.onnx": {**meta, "model": {**meta["model"], "levels": 100}}, "text.onnx": "[1, 2]",
                        "bogus.onnx": meta}.items():
        del proto.metadata_props[:]
        if props is not None:
            onnx.helper.set_model_props(proto, {"denoiser": props if isinstance(props, str) else json.dumps(props)})
        if name == "bogus.onnx":
            proto.graph.node[0].op_type = "NoSuchOperator"
        onnx.save(proto, str(tmp_path / name))
    for name, message in cases.items():
        code = main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (name, err)
