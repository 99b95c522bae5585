"""The Denoise tab's handlers on real files with a real (tiny) model: downloads keep the
upload's format and bit depth, the add-noise demo makes the noise it names, the 100 % region
is a true crop, and the model line says which backend and precision run."""

import os
import time

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from denoiser.core.imageio import ImageInfo, read_image, write_image
from denoiser.run.inference import Denoiser


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def expected(checkpoint, arr, strength=1.0):
    return Denoiser.load(checkpoint, backend="torch").denoise_array(arr, strength)


@pytest.mark.parametrize("name, fmt, bits, ext", [("rgb16.png", "PNG", 16, ".png"), ("gray16.tif", "TIFF", 16, ".tif"),
                                                  ("photo.jpg", "JPEG", 8, ".jpg"), ("scan.bmp", "BMP", 8, ".bmp")])
def test_download_keeps_the_uploads_format_and_bit_depth(tiny_checkpoint, tmp_path, name, fmt, bits, ext):
    from denoiser.app.denoise_tab import denoise_upload

    clean, _ = read_image(DATA / ("camera.png" if "gray" in name else "astronaut.png"))
    src = write_image(tmp_path / name, clean[:96, :80], ImageInfo(bits=bits, gray=clean.shape[2] == 1))
    arr, _ = read_image(src)
    r = denoise_upload(str(src), 1.0, str(tiny_checkpoint), "torch")

    down, info = read_image(r["download"])
    assert r["download"].endswith(ext) and info.format == fmt and info.bits == bits
    assert down.shape == arr.shape
    png, png_info = read_image(r["png"])
    assert png_info.format == "PNG" and png_info.bits == bits  # the shown result is lossless too
    tol = 1 / 255 if bits == 8 else 1 / 65535
    assert np.abs(png - expected(tiny_checkpoint, arr)).max() <= tol * 0.51
    assert Image.open(r["before"]).format in ("PNG", "JPEG", "WEBP")  # a browser can show it (TIFF, BMP: a copy)
    assert "denoised in" in r["line"] and "PyTorch fp32 on cpu" in r["line"]


def test_model_line_names_backend_and_precision(tiny_checkpoint, tiny_onnx):
    from denoiser.app.denoise_tab import describe_model

    assert "PyTorch fp32 on cpu" in describe_model(str(tiny_checkpoint), "torch")
    assert "ONNX Runtime fp32 on CPU" in describe_model(str(tiny_onnx), "auto")


def test_quality_control_picks_the_mode_and_the_line_says_it(tiny_checkpoint, tmp_path):
    from denoiser.app.denoise_tab import QUALITY_CHOICES, denoise_upload, describe_model

    assert QUALITY_CHOICES == ("auto", "fast", "balanced", "high")
    assert "quality **high**" in describe_model(str(tiny_checkpoint), "torch", "high")
    assert "quality" not in describe_model(str(tiny_checkpoint), "torch", "auto").split("runs on")[0]
    clean, _ = read_image(DATA / "astronaut.png")
    src = write_image(tmp_path / "in.png", clean[:40, :48], ImageInfo())
    r = denoise_upload(str(src), 1.0, str(tiny_checkpoint), "torch", quality="high")
    assert "x8 self-ensemble" in r["line"]
    with pytest.raises(Exception, match="quality fast runs INT8 on ONNX Runtime"):
        denoise_upload(str(src), 1.0, str(tiny_checkpoint), "torch", quality="fast")


def test_the_shipped_default_sends_gray_uploads_to_the_gray_model(tmp_path):
    from denoiser.app.denoise_tab import denoise_upload, describe_model
    from denoiser.run.inference import DEFAULT_GRAY_MODEL, DEFAULT_MODEL

    clean, _ = read_image(DATA / "camera.png")
    gray = clean[:64, :72]
    for name, arr in (("gray.png", gray), ("gray-as-rgb.png", np.repeat(gray, 3, axis=2))):
        src = write_image(tmp_path / name, arr, ImageInfo(bits=8, gray=arr.shape[2] == 1))
        out, _ = read_image(denoise_upload(str(src), 1.0, str(DEFAULT_MODEL), "torch")["png"])
        want = expected(DEFAULT_GRAY_MODEL, read_image(src)[0][..., :1])
        assert np.abs(out - want).max() <= 0.51 / 255, name
    assert f"gray images go to **{DEFAULT_GRAY_MODEL.name}**" in describe_model(str(DEFAULT_MODEL), "torch")
    # any other model runs gray uploads itself
    assert "gray images" not in describe_model(str(DEFAULT_GRAY_MODEL), "torch")


def test_unusable_model_and_strength_get_clear_messages(tiny_checkpoint, tmp_path):
    import gradio as gr

    from denoiser.app.denoise_tab import denoise_upload

    with pytest.raises(gr.Error, match="Cannot use the model missing.safetensors"):
        denoise_upload(str(DATA / "astronaut.png"), 1.0, str(tmp_path / "missing.safetensors"), "auto")
    with pytest.raises(gr.Error, match="Strength must be between 0 and 1"):
        denoise_upload(str(DATA / "astronaut.png"), 1.5, str(tiny_checkpoint), "torch")
    with pytest.raises(gr.Error, match="Upload an image first"):
        denoise_upload(None, 1.0, str(tiny_checkpoint), "torch")


def test_every_noise_kind_of_the_dropdown_makes_a_valid_spec():
    from denoiser.app.denoise_tab import demo_spec
    from denoiser.core.noise.ops import NOISE_KINDS, parse_noise_spec

    for kind in NOISE_KINDS:
        for level in (0, 25, 100):
            parse_noise_spec(demo_spec(kind, level))  # raises on a bad spec


def test_add_noise_makes_the_named_noise_and_psnr_is_reported(tiny_checkpoint):
    from denoiser.app.denoise_tab import add_noise, denoise_upload, psnr_line

    noisy_path, reference = add_noise(str(DATA / "astronaut.png"), "gaussian:25", seed=3)
    clean, _ = read_image(DATA / "astronaut.png")
    noisy, info = read_image(noisy_path)
    assert info.bits == 8 and noisy.shape == clean.shape
    residual = (noisy - clean)[(clean > 0.2) & (clean < 0.8)] * 255  # away from clipping
    assert 23.5 < residual.std() < 26.5
    assert add_noise(str(DATA / "astronaut.png"), "gaussian:25", seed=3)[1]["noisy_sha256"] == reference[
        "noisy_sha256"]  # seeded: the same noise again

    r = denoise_upload(noisy_path, 1.0, str(tiny_checkpoint), "torch")
    line = psnr_line(reference, noisy_path, r["png"])
    assert "dB noisy" in line and "dB denoised" in line
    assert psnr_line(reference, str(DATA / "noisy_astronaut.png"), r["png"]) == ""  # another upload: no claim


def test_bad_noise_spec_gets_a_clear_message():
    import gradio as gr

    from denoiser.app.denoise_tab import add_noise

    with pytest.raises(gr.Error, match="Noise: .*unknown noise"):
        add_noise(str(DATA / "astronaut.png"), "thermal:3", seed=0)


def test_region_is_a_one_to_one_crop_of_input_and_result(tiny_checkpoint):
    from denoiser.app.denoise_tab import REGION, denoise_upload, inspect_region

    src = DATA / "noisy_astronaut.png"
    r = denoise_upload(str(src), 1.0, str(tiny_checkpoint), "torch")
    before, after = inspect_region(r["before"], r["png"], x=10, y=250, size=64)
    a, b = np.asarray(Image.open(before)), np.asarray(Image.open(after))
    assert a.shape == b.shape == (64, 64, 3)
    assert np.array_equal(a, np.asarray(Image.open(src))[256 - 64:, :64])  # clamped to the corner
    assert np.array_equal(b, np.asarray(Image.open(r["png"]))[256 - 64:, :64])
    assert Image.open(inspect_region(r["before"], r["png"], 128, 128)[0]).size == (REGION, REGION)
    assert os.path.dirname(before).startswith(os.environ["GRADIO_TEMP_DIR"])  # served from Gradio's folder


def test_old_results_are_removed_so_disk_use_stays_bounded(monkeypatch):
    from denoiser.app import denoise_tab as ui_denoise

    first = ui_denoise.output_dir()
    old = first.parent / "tmp-old"
    old.mkdir()
    stale = time.time() - ui_denoise.RESULTS_MAX_AGE_S - 60
    os.utime(old, (stale, stale))
    monkeypatch.setattr(ui_denoise, "_last_prune", 0.0)
    fresh = ui_denoise.output_dir()
    assert not old.exists() and first.exists() and fresh.exists()


def test_an_upload_gets_its_noise_level_as_estimate_noise_measures_it(tmp_path):
    from denoiser.app.denoise_tab import upload_summary
    from denoiser.core.noise.estimate import estimate_channel_sigmas

    noisy, _ = read_image(DATA / "noisy_astronaut.png")  # sigma 25 before clipping (data/README.md)
    want = estimate_channel_sigmas(noisy)
    line = upload_summary(str(DATA / "noisy_astronaut.png"))
    assert f"σ ≈ {np.mean(want):.1f}** (moderate)" in line and 22 < np.mean(want) < 28
    assert f"R {want[0]:.1f}, G {want[1]:.1f}, B {want[2]:.1f}" in line and "256x256 colour, 8-bit PNG" in line
    assert "(looks clean)" in upload_summary(str(DATA / "camera.png"))

    # A big photo is measured on a centre crop (bounded time and memory), and says so.
    rng = np.random.default_rng(0)
    flat = np.clip(0.5 + rng.normal(0, 10 / 255, (1100, 1300, 1)), 0, 1)
    line = upload_summary(str(write_image(tmp_path / "big.png", flat, ImageInfo(bits=16, gray=True))), side=512)
    sigma = float(line.split("σ ≈ ")[1].split("**")[0])
    assert abs(sigma - 10) < 0.5 and "from a 512x512 centre crop" in line and "1300x1100 gray, 16-bit" in line

    tiny = write_image(tmp_path / "tiny.png", flat[:8, :8], ImageInfo(bits=8, gray=True))
    assert "noise level: cannot estimate" in upload_summary(str(tiny))  # still an image one may denoise


def test_a_refused_upload_is_a_message_and_one_console_line(tmp_path, capfd):
    import gradio as gr

    from denoiser.app.denoise_tab import upload_summary

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(gr.Error, match="Cannot use this file: not a readable image") as err:
        upload_summary(str(bad))
    assert err.value.print_exception is False  # Gradio prints no traceback for it
    assert str(tmp_path) not in err.value.message
    console = capfd.readouterr().err.splitlines()
    assert len(console) == 1 and "notes.png" in console[0]
    assert console[0].startswith("denoiser: refused: Cannot use this file")
