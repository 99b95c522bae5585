"""Reading and writing image files: the only place that knows about bit depth and metadata.

Inside the package an image is a float32 numpy array in [0, 1], shaped (H, W, C) with C = 1
(gray) or 3 (RGB); an alpha channel is split off and carried in `ImageInfo`, untouched, so
only colour is ever denoised. `ImageInfo` also keeps what is needed to write a faithful
output: format, bit depth, EXIF and ICC profile.

This module imports nothing else from the package, so any stage may use it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FORMAT_BY_EXTENSION = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
    ".bmp": "BMP", ".webp": "WEBP",
}
EXTENSION_BY_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
DEFAULT_MAX_PIXELS = 200_000_000  # decompression-bomb guard; a 100 MP photo fits twice over


class ImageError(ValueError):
    """A file that cannot be used as an image, with a message meant for a person."""


@dataclass(frozen=True)
class ImageInfo:
    format: str = "PNG"
    bits: int = 8  # 8 or 16 per channel
    gray: bool = False
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1], written back untouched
    exif: bytes | None = None
    icc_profile: bytes | None = None


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Read a file into (float32 HxWxC array in [0, 1], ImageInfo). Raises ImageError."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{w}x{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit")
            img.load()
            return from_pil(img)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"not a readable image ({type(e).__name__}: {e})") from None


def from_pil(img: Image.Image) -> tuple[np.ndarray, ImageInfo]:
    """Convert a PIL image (any mode) to the package's array form plus what to write back."""
    fmt = (img.format or "PNG").upper()
    exif = img.info.get("exif")
    icc = img.info.get("icc_profile")
    img = ImageOps.exif_transpose(img)  # orientation applied on read; the tag is reset below
    mode = img.mode
    if mode == "CMYK":
        raise ImageError("CMYK images are not supported: convert to RGB first")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    alpha = None
    bits = 8
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        arr, bits, gray = np.clip(arr, 0, 1)[..., None], 16, True
    elif mode in ("1", "L", "LA"):
        if mode == "LA":
            alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        arr = np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
        gray = True
    elif mode == "F":
        arr, gray = np.clip(np.asarray(img, dtype=np.float32), 0, 1)[..., None], True
    else:
        if "A" in mode:
            alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        gray = False
    if exif:
        exif = _reset_orientation(img, exif)
    info = ImageInfo(format=fmt, bits=bits, gray=gray, alpha=alpha, exif=exif, icc_profile=icc)
    return np.ascontiguousarray(arr), info


def _reset_orientation(img: Image.Image, exif: bytes) -> bytes:
    # exif_transpose already rotated the pixels; writing the old tag would rotate them twice.
    try:
        e = Image.Exif()
        e.load(exif)
        e[0x0112] = 1
        return e.tobytes()
    except Exception:  # a damaged EXIF block is dropped rather than failing the image
        return None


def to_pil(arr: np.ndarray, info: ImageInfo = ImageInfo()) -> Image.Image:
    """The inverse of `from_pil`: array (H, W, C) in [0, 1] -> PIL image at info's bit depth."""
    arr = np.clip(arr, 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        if info.bits == 16:
            img = Image.fromarray(np.round(arr * 65535.0).astype(np.uint16))
        else:
            img = Image.fromarray(np.round(arr * 255.0).astype(np.uint8), mode="L")
        if info.alpha is not None:
            img = Image.merge("LA", [img.convert("L"), _alpha_image(info.alpha)])
        return img
    img = Image.fromarray(np.round(arr * 255.0).astype(np.uint8), mode="RGB")
    if info.alpha is not None:
        img = Image.merge("RGBA", [*img.split(), _alpha_image(info.alpha)])
    return img


def _alpha_image(alpha: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(alpha, 0, 1) * 255.0).astype(np.uint8), mode="L")


def write_image(path: str | Path, arr: np.ndarray, info: ImageInfo = ImageInfo(), quality: int = 95) -> Path:
    """Write atomically (temp file in the same folder, then rename): no half-written outputs."""
    path = Path(path)
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"unknown output extension {path.suffix!r}")
    if info.bits == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        info = replace(info, bits=8)
    img = to_pil(arr, info)
    if fmt in ("JPEG", "BMP") and img.mode in ("RGBA", "LA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")  # these formats have no alpha
    kwargs: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "WEBP" and quality >= 100:
        kwargs["lossless"] = True
    if info.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        kwargs["exif"] = info.exif
    if info.icc_profile and fmt != "BMP":
        kwargs["icc_profile"] = info.icc_profile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.round(np.clip(arr, 0, 1) * 255.0).astype(np.uint8)
