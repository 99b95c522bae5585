import numpy as np
import pytest
import torch
from PIL import Image

from denoiser.backends import TorchBackend
from denoiser.config import ModelConfig
from denoiser.inference import Denoiser
from denoiser.model import UNet
from denoiser.tiling import denoise_tiled, tile_boxes


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


def test_strength_blends_input_and_denoised(both):
    dn = both[0]
    arr = np.random.default_rng(1).random((24, 24, 3), dtype=np.float32)
    full = dn.denoise_array(arr)
    assert np.array_equal(dn.denoise_array(arr, 0.0), arr)
    assert np.allclose(dn.denoise_array(arr, 0.25), 0.25 * full + 0.75 * arr, atol=1e-6)
    with pytest.raises(ValueError):
        dn(arr, strength=1.5)


def test_tiled_equals_untiled():
    model = UNet(ModelConfig(width=8, levels=3)).eval()
    run = TorchBackend(model)
    img = np.random.default_rng(0).random((3, 203, 150), dtype=np.float32)
    whole = run(img[None])[0]
    tiled = denoise_tiled(run, img, tile=48, margin=model.receptive_field, alignment=model.alignment, batch=3)
    assert np.abs(whole - tiled).max() < 1e-3


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
