"""Reading and writing image files: the only place that knows about bit depth and metadata.

Inside the package an image is a float32 numpy array in [0, 1], shaped (H, W, C) with C = 1
(gray) or 3 (RGB); an alpha channel is split off and carried in `ImageInfo`, untouched, so
only colour is ever denoised. `ImageInfo` also keeps what is needed to write a faithful
output: format, bit depth (8 or 16), EXIF (orientation already applied to the pixels), ICC
profile and resolution.

Pillow does the work, except for 16-bit colour/alpha PNG and TIFF, which it would cut to
8 bits: those go through `imageio16`. This module imports nothing else from the package.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from denoiser.core.atomic import atomic_write
from denoiser.core.imageio16 import (
    EXIF_HEADER,
    decode_deep,
    encode_png16,
    encode_tiff16,
    is_deep,
    orient,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FORMAT_BY_EXTENSION = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
    ".bmp": "BMP", ".webp": "WEBP",
}
# in the order `denoiser denoise --format` lists them
EXTENSION_BY_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
DEFAULT_MAX_PIXELS = 150_000_000  # decompression-bomb guard: a 100 MP photo fits, a 20000x20000 bomb does not
ORIENTATION = 0x0112
# Tags that describe a TIFF file's pixel layout, not the photo: a TIFF's EXIF comes from its
# main directory, and copying these to another file would describe the wrong pixels.
TIFF_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284,
                              317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 530, 531, 532, 34675, 37724})
UNSUPPORTED_MODES = {"CMYK": "CMYK (print) images are not supported: convert to RGB with their ICC profile first",
                     "LAB": "Lab images are not supported: convert to RGB first"}
ROWS = 256  # quantize in row blocks: no full-size temporaries for huge images


class ImageError(ValueError):
    """A file that cannot be used as an image, with a message meant for a person."""


class TooManyPixels(ImageError):
    """An image over a pixel limit (the guard against decompression bombs and memory hogs)."""


@dataclass(frozen=True)
class ImageInfo:
    format: str = "PNG"
    bits: int = 8  # 8 or 16 per channel
    gray: bool = False
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1], written back untouched
    exif: bytes | None = None  # starts with b"Exif\0\0"; orientation tag reset (pixels are upright)
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Read a file into (float32 HxWxC array in [0, 1], ImageInfo). Raises ImageError."""
    return _read(path, max_pixels, uint8=False)


def read_uint8(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Only the colour, as uint8 HxWxC: what training holds. 8-bit files never pass through float
    (four times the bytes: a 144 MP PNG is 1.7 GB as float32); 16-bit ones are rounded to 8 bits,
    exactly as `to_uint8(read_image(path)[0])`. Raises ImageError."""
    return _read(path, max_pixels, uint8=True)


def _read(path: str | Path, max_pixels: int, uint8: bool):
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        # Our own guard below is the one that counts; lift Pillow's (lower) one to match it.
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise TooManyPixels(f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                                     "(--max-pixels, the guard against decompression bombs)")
                if is_deep(img):
                    arr, info = _read_deep(img, path.read_bytes())
                    return to_uint8(arr) if uint8 else (arr, info)
                img.load()
                return _uint8_from_pil(img) if uint8 else from_pil(img)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as e:
        raise TooManyPixels(f"over the limit of {max_pixels:,} pixels ({e})") from None
    except Exception as e:  # crafted files make decoders raise anything (struct.error, IndexError...)
        raise ImageError(f"not a readable image ({type(e).__name__}: {e})") from None


def read_size(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) as `read_image` returns the pixels (EXIF rotation applied), from the
    header alone: what memory an image will take is known before it is decoded. Raises
    ImageError, TooManyPixels past `max_pixels`."""
    try:
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)  # as read_image does
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                # A PNG's getexif() decodes the whole image to look for EXIF after the pixels;
                # EXIF there is rare, and orientation 5-8 rarer: the header's EXIF, or none, it is.
                header_only = img.format == "PNG" and "exif" not in img.info
                orientation = 1 if header_only else int(img.getexif().get(ORIENTATION, 1))
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except Image.DecompressionBombError as e:
        raise TooManyPixels(f"over the limit of {max_pixels:,} pixels ({e})") from None
    except Exception as e:  # crafted headers make Pillow raise anything
        raise ImageError(f"not a readable image ({type(e).__name__}: {e})") from None
    if w * h > max_pixels:
        raise TooManyPixels(f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}")
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _read_deep(img: Image.Image, data: bytes) -> tuple[np.ndarray, ImageInfo]:
    exif, orientation = _portable_exif(img)
    arr = orient(decode_deep(data), orientation).astype(np.float32)
    if arr.shape[:2] != (img.size[::-1] if orientation < 5 else img.size):
        raise ImageError("16-bit image data does not match the declared size")
    arr /= 65535.0
    c = arr.shape[2]
    alpha = np.ascontiguousarray(arr[..., -1]) if c in (2, 4) else None
    colour = np.ascontiguousarray(arr[..., :1] if c <= 2 else arr[..., :3])
    info = ImageInfo(format=img.format, bits=16, gray=c <= 2, alpha=alpha, exif=exif,
                     icc_profile=img.info.get("icc_profile"), dpi=img.info.get("dpi"))
    return colour, info


def from_pil(img: Image.Image) -> tuple[np.ndarray, ImageInfo]:
    """Convert a PIL image (any supported mode) to the package's array form plus what to write back."""
    if img.mode in UNSUPPORTED_MODES:
        raise ImageError(UNSUPPORTED_MODES[img.mode])
    fmt = (img.format or "PNG").upper()
    exif, orientation = _portable_exif(img)
    meta = {"icc_profile": img.info.get("icc_profile"), "dpi": img.info.get("dpi")}
    if orientation != 1:
        img = ImageOps.exif_transpose(img)  # orientation applied on read; the tag was reset above
    mode = img.mode
    if mode in ("P", "PA"):  # palette: convert to what the palette holds
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
        mode = img.mode
    alpha, bits, gray = None, 8, True
    if mode.startswith("I;16") or mode == "I":
        arr = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0, 1)[..., None]
        bits = 16
    elif mode == "F":  # 32-bit float gray: keep as much precision as our writers can (16 bits)
        arr, bits = np.clip(np.asarray(img, dtype=np.float32), 0, 1)[..., None], 16
    elif mode in ("1", "L", "LA", "La"):
        if mode in ("LA", "La"):
            alpha = _channel(img.convert("LA"), "A")
        arr = _to_float(img.convert("L"))[..., None]
    else:
        gray = False
        if "A" in mode or "a" in mode:
            img = img.convert("RGBA")
            alpha = _channel(img, "A")
        arr = _to_float(img.convert("RGB"))
    info = ImageInfo(format=fmt, bits=bits, gray=gray, alpha=alpha, exif=exif, **meta)
    return np.ascontiguousarray(arr), info


def _uint8_from_pil(img: Image.Image) -> np.ndarray:
    """`from_pil`'s colour, rounded to uint8, with no float copy for 8-bit modes."""
    if img.mode in UNSUPPORTED_MODES:
        raise ImageError(UNSUPPORTED_MODES[img.mode])
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit gray: rare, and small beside colour
        return to_uint8(from_pil(img)[0])
    _, orientation = _portable_exif(img)
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode in ("1", "L", "LA", "La"):
        return np.asarray(img.convert("L"))[..., None]
    if img.mode in ("P", "PA"):  # as from_pil: what the palette holds, alpha dropped below
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    return np.asarray(img.convert("RGB"))


def _to_float(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32)
    arr /= 255.0
    return arr


def _channel(img: Image.Image, band: str) -> np.ndarray:
    return _to_float(img.getchannel(band))


def _portable_exif(img: Image.Image) -> tuple[bytes | None, int]:
    """(EXIF fit for any output format, orientation). Call while the file is still open.

    The original bytes are kept verbatim when nothing needs changing (maker notes hold
    offsets that re-serialising can break); otherwise the orientation tag is reset to 1,
    because the pixels are rotated on read and writing the old tag would rotate them twice.
    """
    try:
        source = img.getexif()
        raw = img.info.get("exif")
        orientation = int(source.get(ORIENTATION, 1))
        layout = [t for t in source if t in TIFF_LAYOUT_TAGS]
        if raw and orientation == 1 and not layout:
            return (raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw), 1
        if not len(source):
            return None, 1
        # Edit a copy (serialising also reads the Exif/GPS sub-directories while the file is
        # open); editing the image's own Exif would stop exif_transpose from rotating it.
        exif = Image.Exif()
        exif.load(source.tobytes())
        for tag in layout:
            del exif[tag]
        if ORIENTATION in exif:
            exif[ORIENTATION] = 1
        return (exif.tobytes() if len(exif) else None), orientation if orientation in range(1, 9) else 1
    except Exception:  # a damaged EXIF block is dropped rather than failing the image
        return None, 1


def to_levels(arr: np.ndarray, bits: int) -> np.ndarray:
    """Float [0, 1] -> uint8/uint16, rounding to nearest, in row blocks (bounded temporaries)."""
    scale, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
    out = np.empty(arr.shape, dtype)
    for y in range(0, arr.shape[0], ROWS):
        block = np.clip(arr[y:y + ROWS], 0.0, 1.0) * np.float32(scale)
        out[y:y + ROWS] = np.rint(block, out=block)
    return out


def _with_alpha(arr: np.ndarray, alpha: np.ndarray | None, bits: int) -> np.ndarray:
    """(H, W, C) float -> (H, W, C[+1]) uint of `bits`, gray kept as one channel."""
    colour = to_levels(arr if arr.ndim == 3 else arr[..., None], bits)
    if alpha is None:
        return colour
    return np.concatenate([colour, to_levels(alpha, bits)[..., None]], axis=2)


def to_pil(arr: np.ndarray, info: ImageInfo = ImageInfo()) -> Image.Image:
    """The inverse of `from_pil`. Pillow has no 16-bit colour mode, so only gray stays 16-bit."""
    gray = arr.ndim == 2 or arr.shape[2] == 1
    if gray and info.bits == 16 and info.alpha is None:
        return Image.fromarray(to_levels(arr.reshape(arr.shape[:2]), 16))
    pixels = _with_alpha(arr, info.alpha, 8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)


def write_image(path: str | Path, arr: np.ndarray, info: ImageInfo = ImageInfo(), quality: int = 95,
                exist_ok: bool = True) -> Path:
    """Write atomically (temp file in the same folder, then rename): no half-written outputs.

    The format follows the extension. 16-bit and alpha are kept where the format has them;
    EXIF and ICC go wherever the format can carry them. With exist_ok=False an output that
    appeared meanwhile is never replaced (FileExistsError).
    """
    path = Path(path)
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"unknown output extension {path.suffix!r}")
    bits = info.bits if fmt in SIXTEEN_BIT_FORMATS else 8
    alpha = info.alpha if fmt in ALPHA_FORMATS else None
    gray = arr.ndim == 2 or arr.shape[2] == 1
    if bits == 16 and (not gray or alpha is not None):  # what Pillow cannot write
        pixels = _with_alpha(arr, alpha, 16)
        encode = encode_png16 if fmt == "PNG" else encode_tiff16
        data = encode(pixels, info.exif, info.icc_profile)
        _atomic_write(path, lambda f: f.write(data), exist_ok)
        return path
    img = to_pil(arr, replace(info, bits=bits, alpha=alpha))
    kwargs: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "WEBP" and quality >= 100:
        kwargs["lossless"] = True
    if info.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        kwargs["exif"] = info.exif
    if info.icc_profile and fmt != "BMP":
        kwargs["icc_profile"] = info.icc_profile
    if info.dpi and fmt in ("JPEG", "PNG", "TIFF"):
        kwargs["dpi"] = info.dpi
    _atomic_write(path, lambda f: img.save(f, format=fmt, **kwargs), exist_ok)
    return path


def _atomic_write(path: Path, write: Callable, exist_ok: bool) -> None:
    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    # hidden temp file, the user's file mode (not mkstemp's 0600), on the disk before it is named
    atomic_write(path, fill, replace=exist_ok, fsync=True)


def is_partial_output(path: Path) -> bool:
    """A temp file `_atomic_write` leaves behind only if the process is killed (SIGKILL, power)."""
    return path.name.startswith(".") and path.name.endswith(".part")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return to_levels(arr, 8)
