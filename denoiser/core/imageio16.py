"""16-bit PNG and TIFF with colour or alpha: what Pillow cannot read or write itself.

Pillow opens 48/64-bit RGB(A) PNG and TIFF files but silently cuts them to 8 bits, and has no
mode to write them. So `imageio` asks `is_deep(img)` on the opened file, decodes such files
with OpenCV (already a dependency) and writes every 16-bit output with the two small encoders
below, which also carry EXIF and the ICC profile (OpenCV's encoders drop both).

Arrays here are uint16, (H, W, C) with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

ROWS_PER_CHUNK = 64  # encoders work in row blocks so temporaries stay small for huge images
PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+A, RGB, RGBA)
EXIF_HEADER = b"Exif\x00\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_deep(img: Image.Image) -> bool:
    """True for a 16-bit-per-sample PNG/TIFF that Pillow would reduce to 8 bits (call before load)."""
    if img.mode not in ("RGB", "RGBA"):
        return False  # 16-bit gray opens as I;16, which Pillow reads fully; gray + alpha opens as RGBA
    if img.format == "PNG":
        return bool(img.tile) and "16" in str(img.tile[0].args)  # raw mode such as "RGB;16B"
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def decode_deep(data: bytes) -> np.ndarray:
    """Decode a file's bytes (see `is_deep`) into (H, W, C) uint16 in RGB(A) order, no orientation."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        raise ValueError("16-bit image data could not be decoded")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 3:
        arr = arr[..., ::-1]  # OpenCV is BGR
    elif arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    if data[:8] == PNG_SIGNATURE and data[25] == 4 and arr.shape[2] == 4:
        arr = arr[..., [0, 3]]  # a gray + alpha PNG (IHDR colour type 4), which OpenCV expands to BGRA
    return np.ascontiguousarray(arr)


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to (H, W, C): the same transposes as PIL's exif_transpose."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png16(arr: np.ndarray, exif: bytes | None = None, icc: bytes | None = None, level: int = 6) -> bytes:
    """A 16-bit PNG of any colour type, with the "Sub" filter on every row (compresses well)."""
    h, w, c = arr.shape
    bpp = 2 * c  # bytes per pixel; PNG filters work on bytes, a pixel apart
    comp = zlib.compressobj(level)
    idat = []
    for y in range(0, h, ROWS_PER_CHUNK):
        raw = arr[y:y + ROWS_PER_CHUNK].astype(">u2").view(np.uint8).reshape(-1, w * bpp)
        rows = np.empty((raw.shape[0], 1 + w * bpp), np.uint8)
        rows[:, 0] = 1  # filter type Sub
        rows[:, 1:1 + bpp] = raw[:, :bpp]
        np.subtract(raw[:, bpp:], raw[:, :-bpp], out=rows[:, 1 + bpp:])  # uint8 wraps, as PNG wants
        idat.append(comp.compress(rows.tobytes()))
    idat.append(comp.flush())
    out = [PNG_SIGNATURE, _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, PNG_COLOUR_TYPE[c], 0, 0, 0))]
    if icc:
        out.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        out.append(_png_chunk(b"eXIf", exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif))
    out += [_png_chunk(b"IDAT", b"".join(idat)), _png_chunk(b"IEND", b"")]
    return b"".join(out)


def encode_tiff16(arr: np.ndarray, exif: bytes | None = None, icc: bytes | None = None, level: int = 6) -> bytes:
    """A 16-bit little-endian TIFF (deflate + horizontal predictor, strips of 64 rows).

    The directory is built by Pillow's own IFD writer, so EXIF tags (including the Exif and
    GPS sub-directories) are written the way Pillow writes them for 8-bit TIFFs.
    """
    from PIL import TiffImagePlugin
    from PIL.TiffTags import TAGS_V2_GROUPS

    h, w, c = arr.shape
    strips = []
    for y in range(0, h, ROWS_PER_CHUNK):
        block = arr[y:y + ROWS_PER_CHUNK].astype("<u2")
        block[:, 1:] -= arr[y:y + ROWS_PER_CHUNK, :-1].astype("<u2")  # predictor 2: uint16 wraps
        strips.append(zlib.compress(block.tobytes(), level))
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif:
        tags = Image.Exif()
        tags.load(exif)
        for tag in tags:
            ifd[tag] = tags.get_ifd(tag) if tag in TAGS_V2_GROUPS else tags[tag]
    ifd[256], ifd[257] = w, h  # width, length
    ifd[258] = (16,) * c  # bits per sample
    ifd[259] = 8  # deflate
    ifd[262] = 2 if c >= 3 else 1  # RGB or BlackIsZero
    ifd[277], ifd[278], ifd[284], ifd[317] = c, ROWS_PER_CHUNK, 1, 2  # samples, rows/strip, chunky, predictor
    ifd[339] = (1,) * c  # unsigned integers
    if c in (2, 4):
        ifd[338] = (2,)  # the extra sample is unassociated alpha
    if icc:
        ifd[34675] = icc
    # Pillow's writer adds the end of the directory's data to StripOffsets, so give them relative.
    ifd[273] = tuple(int(x) for x in np.cumsum([0] + [len(s) for s in strips[:-1]]))
    ifd[279] = tuple(len(s) for s in strips)
    return b"II*\x00" + struct.pack("<I", 8) + ifd.tobytes(8) + b"".join(strips)
