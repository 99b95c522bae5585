"""Faithful image I/O, and every bad or odd input we know of, generated right here."""

import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps
from PIL.TiffImagePlugin import IFDRational

from denoiser.core.imageio import (
    ImageError,
    ImageInfo,
    is_partial_output,
    read_image,
    write_image,
)
from denoiser.core.imageio16 import encode_png16

RNG = np.random.default_rng(0)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif(orientation: int = 1) -> Image.Exif:
    e = Image.Exif()
    e[0x010F] = "TestCam"  # Make
    e[ORIENT] = orientation
    e.get_ifd(0x8769)[0x829A] = IFDRational(1, 250)  # ExposureTime, in the Exif sub-directory
    loaded = Image.Exif()  # as read from a file, so every writer (TIFF too) sees the sub-directory
    loaded.load(e.tobytes())
    return loaded


ORIENT = 0x0112


def tags(path) -> tuple:
    with Image.open(path) as im:
        e = im.getexif()
        return e.get(0x010F), e.get_ifd(0x8769).get(0x829A), e.get(ORIENT, 1), im.info.get("icc_profile")


def png_bytes(w: int, h: int, colour_type: int = 2, idat: bytes = b"") -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
            + chunk(b"IDAT", idat or zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("ext", ["png", "tif", "bmp"])
def test_lossless_8bit_round_trip(tmp_path, ext):
    rgb = RNG.integers(0, 256, (31, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / f"a.{ext}")
    arr, info = read_image(tmp_path / f"a.{ext}")
    assert arr.dtype == np.float32 and arr.shape == (31, 17, 3) and info.bits == 8 and not info.gray
    write_image(tmp_path / f"b.{ext}", arr, info)
    with Image.open(tmp_path / f"b.{ext}") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_gray_stays_16bit_gray(tmp_path, ext):
    g = RNG.integers(0, 65536, (23, 40), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"g.{ext}"), g)  # an encoder that is not ours
    arr, info = read_image(tmp_path / f"g.{ext}")
    assert info.bits == 16 and info.gray and arr.shape == (23, 40, 1)
    assert np.array_equal(np.rint(arr[..., 0] * 65535).astype(np.uint16), g)
    write_image(tmp_path / f"out.{ext}", arr, info)
    out = cv2.imread(str(tmp_path / f"out.{ext}"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and np.array_equal(out, g)


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_keeps_depth_and_alpha(tmp_path, ext, channels):
    a = RNG.integers(0, 65536, (21, 34, channels), dtype=np.uint16)
    bgr = a[..., [2, 1, 0, 3][:channels]]
    cv2.imwrite(str(tmp_path / f"c.{ext}"), bgr)  # Pillow alone would read this as 8-bit
    arr, info = read_image(tmp_path / f"c.{ext}")
    assert info.bits == 16 and not info.gray and arr.shape == (21, 34, 3)
    assert np.array_equal(np.rint(arr * 65535).astype(np.uint16), a[..., :3])
    assert (info.alpha is None) == (channels == 3)
    write_image(tmp_path / f"out.{ext}", arr, info)
    out = cv2.imread(str(tmp_path / f"out.{ext}"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and np.array_equal(out, bgr)
    if ext == "tif":
        import tifffile

        assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), a)


def test_16bit_gray_with_alpha_png(tmp_path):
    ga = RNG.integers(0, 65536, (9, 12, 2), dtype=np.uint16)
    (tmp_path / "ga.png").write_bytes(encode_png16(ga))
    arr, info = read_image(tmp_path / "ga.png")
    assert info.gray and info.bits == 16 and arr.shape == (9, 12, 1)
    assert np.array_equal(np.rint(info.alpha * 65535).astype(np.uint16), ga[..., 1])
    write_image(tmp_path / "out.png", arr * 0.5, info)  # colour changed, alpha must not
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and np.array_equal(out[..., 3], ga[..., 1])


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
def test_rgba_alpha_is_untouched(tmp_path, ext):
    rgba = RNG.integers(0, 256, (16, 19, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / f"a.{ext}", **({"lossless": True} if ext == "webp" else {}))
    arr, info = read_image(tmp_path / f"a.{ext}")
    assert arr.shape == (16, 19, 3) and info.alpha is not None
    write_image(tmp_path / f"b.{ext}", 1 - arr, info, quality=100)
    with Image.open(tmp_path / f"b.{ext}") as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], rgba[..., 3])


def test_gray_and_gray_alpha_stay_gray(tmp_path):
    la = RNG.integers(0, 256, (8, 9, 2), dtype=np.uint8)
    Image.fromarray(la).save(tmp_path / "la.png")
    arr, info = read_image(tmp_path / "la.png")
    assert info.gray and arr.shape == (8, 9, 1) and info.alpha is not None
    write_image(tmp_path / "out.png", arr, info)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "LA" and np.array_equal(np.asarray(im), la)


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_is_converted(tmp_path, transparent):
    p = Image.fromarray(RNG.integers(0, 256, (10, 11, 3), dtype=np.uint8)).quantize(16)
    if transparent:
        p.info["transparency"] = 0
    p.save(tmp_path / "p.png")
    arr, info = read_image(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        expect = np.asarray(im.convert("RGBA" if transparent else "RGB"))
    assert arr.shape == (10, 11, 3) and (info.alpha is not None) == transparent
    assert np.array_equal(np.rint(arr * 255).astype(np.uint8), expect[..., :3])


def test_cmyk_is_refused_clearly(tmp_path):
    Image.new("CMYK", (12, 10), (10, 200, 30, 0)).save(tmp_path / "print.jpg")
    with pytest.raises(ImageError, match="CMYK"):
        read_image(tmp_path / "print.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_on_read_and_reset_on_write(tmp_path, orientation):
    rgb = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "r.png", exif=exif(orientation))
    arr, info = read_image(tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as im:
        upright = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(np.rint(arr * 255).astype(np.uint8), upright)
    write_image(tmp_path / "out.jpg", arr, info)
    make, exposure, orient, _ = tags(tmp_path / "out.jpg")
    assert (make, exposure, orient) == ("TestCam", 1 / 250, 1)
    # the same through the 16-bit path, which rotates with its own code
    deep = RNG.integers(0, 65536, (6, 10, 3), dtype=np.uint16)
    (tmp_path / "d.png").write_bytes(encode_png16(deep, exif(orientation).tobytes()))
    darr, dinfo = read_image(tmp_path / "d.png")
    pil_rotated = [np.asarray(ImageOps.exif_transpose(_with_orientation(deep[..., i], orientation)))
                   for i in range(3)]
    assert np.array_equal(np.rint(darr * 65535).astype(np.uint16), np.stack(pil_rotated, axis=2))


def _with_orientation(channel: np.ndarray, orientation: int) -> Image.Image:
    im = Image.fromarray(channel)
    im.getexif()[ORIENT] = orientation
    return im


@pytest.mark.parametrize("src,dst", [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("tif", "tif"),
                                     ("jpg", "png"), ("tif", "jpg"), ("png", "tif")])
def test_exif_and_icc_are_copied(tmp_path, src, dst):
    im = Image.fromarray(RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8))
    im.save(tmp_path / f"in.{src}", exif=exif(), icc_profile=SRGB)
    arr, info = read_image(tmp_path / f"in.{src}")
    write_image(tmp_path / f"out.{dst}", arr, info)
    assert tags(tmp_path / f"out.{dst}") == ("TestCam", 1 / 250, 1, SRGB)
    with Image.open(tmp_path / f"out.{dst}") as out:
        assert out.size == (14, 12)  # no stale TIFF layout tag made it into the directory


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_exif_and_icc_survive_16bit_colour(tmp_path, ext):
    a = RNG.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(encode_png16(a, exif().tobytes(), SRGB))
    arr, info = read_image(tmp_path / "in.png")
    write_image(tmp_path / f"out.{ext}", arr, info)
    assert tags(tmp_path / f"out.{ext}") == ("TestCam", 1 / 250, 1, SRGB)


def test_dpi_is_kept(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "scan.tif", dpi=(600, 600))
    arr, info = read_image(tmp_path / "scan.tif")
    write_image(tmp_path / "out.png", arr, info)
    with Image.open(tmp_path / "out.png") as im:
        assert round(im.info["dpi"][0]) == 600


@pytest.mark.parametrize("name,content,match", [
    ("empty.png", b"", "empty"),
    ("text.png", b"hello, I am not an image\n" * 10, "not a readable image"),
    ("truncated.png", None, "not a readable image"),
    ("huge.png", png_bytes(100_000, 100_000), "over the"),
    ("garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "not a readable image"),
])
def test_bad_files_raise_a_clear_image_error(tmp_path, name, content, match):
    if content is None:
        buf = io.BytesIO()
        Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
        content = buf.getvalue()[:600]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=match):
        read_image(tmp_path / name)


def test_max_pixels_guard(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="over the limit of 5,000"):
        read_image(tmp_path / "a.png", max_pixels=5000)
    assert read_image(tmp_path / "a.png", max_pixels=10_000)[0].shape == (100, 100, 3)


def test_one_pixel_and_unicode_names(tmp_path):
    folder = tmp_path / "dossier été"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "1x1.png")
    arr, info = read_image(tmp_path / "1x1.png")
    write_image(folder / "résumé photo 1×1.png", arr, info)
    assert read_image(folder / "résumé photo 1×1.png")[0].shape == (1, 1, 3)


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    arr = RNG.random((5, 5, 3), dtype=np.float32)
    write_image(tmp_path / "a.png", arr)
    with pytest.raises(FileExistsError):
        write_image(tmp_path / "a.png", np.zeros((5, 5, 3), np.float32), exist_ok=False)
    assert read_image(tmp_path / "a.png")[0].max() > 0  # not replaced
    with pytest.raises(ValueError):  # the JPEG encoder refuses EXIF over 64 KB mid-write
        write_image(tmp_path / "b.jpg", arr, ImageInfo(exif=b"Exif\0\0" + b"\0" * 70_000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert not any(is_partial_output(p) for p in tmp_path.iterdir())


def test_outputs_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32))
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
