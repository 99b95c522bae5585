"""What the app's Denoise tab does when a button is pressed: each handler reads the upload
with our own reader, calls the package, and writes files for the page to show or offer.

Results shown on the page are PNG (lossless; 16-bit stays 16-bit); the download keeps the
upload's own format and bit depth. Errors a person can fix come back as `user_error` (a `gr.Error`) with a
plain message (ui_messages.user_error), never as a traceback, on the page or the console.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from denoiser.app.messages import user_error
from denoiser.core.atomic import file_sha256
from denoiser.core.imageio import (
    EXTENSION_BY_FORMAT,
    ImageError,
    ImageInfo,
    read_image,
    write_image,
)
from denoiser.run.inference import Denoiser, shipped_gray_companion
from denoiser.run.quality import QUALITIES

MAX_PIXELS = 40_000_000  # a 40 MP upload is still fine on a laptop-class CPU with tiling
NOISE_DEMO_MAX_PIXELS = 16_000_000  # noise is made on the whole image at once (no tiling)
REGION = 256  # side of the 100 % crop, in image pixels
ESTIMATE_SIDE = 1024  # the noise estimate reads a centre crop this big: bounded time and memory on big photos
NOISE_WORDS = ((2.0, "looks clean"), (10.0, "light"), (30.0, "moderate"), (50.0, "strong"), (float("inf"), "heavy"))
BROWSER_FORMATS = ("PNG", "JPEG", "WEBP")  # what every browser displays; others get a PNG copy
RESULTS_MAX_AGE_S = 24 * 3600  # results (and batch uploads) are kept this long for downloading
_load_lock = threading.Lock()
_last_prune = 0.0


QUALITY_CHOICES = ("auto", *QUALITIES)  # the app's quality control; auto = the library's default (None)


@lru_cache(maxsize=4)
def _cached_denoiser(path: str, backend: str, quality: str | None = None) -> Denoiser:
    # The shipped colour model comes with the shipped gray one for gray uploads, as on the CLI.
    return Denoiser.load(path, backend=backend, gray_model=shipped_gray_companion(path), quality=quality)


def get_denoiser(path: str, backend: str = "auto", quality: str | None = None) -> Denoiser:
    with _load_lock:  # two first requests at once must not load (or export) the model twice
        return _cached_denoiser(str(path), backend, None if quality in (None, "auto") else quality)


def prepare_model(path: str, backend: str) -> Denoiser:
    """Load a model and the gray companion it brings (that one loads on the first gray image
    otherwise), exporting either to ONNX if it runs that way: done at start-up, not in a request."""
    dn = load_for_ui(path, backend)
    if dn.gray_path is not None:
        try:
            dn._gray_model()  # Denoiser loads it lazily, under its own lock
        except (OSError, ValueError, RuntimeError, ImportError) as e:
            raise user_error(f"Cannot use the gray model {dn.gray_path.name} on {backend}: {e}") from None
    return dn


def load_for_ui(path: str, backend: str, quality: str | None = None) -> Denoiser:
    if not path:
        raise user_error("Choose a model first.")
    try:
        return get_denoiser(path, backend, quality)
    except (OSError, ValueError, RuntimeError, ImportError) as e:  # named by file, not by the server's folders
        reason = str(e).replace(str(Path(path).parent) + os.sep, "")
        raise user_error(f"Cannot use the model {Path(path).name} on {backend}: {reason}") from None


def describe_model(path: str, backend: str, quality: str | None = None) -> str:
    """Which model, and which backend, precision and quality mode will run it (loads it): a few short lines."""
    dn = load_for_ui(path, backend, quality)
    backend_line = dn.backend.describe()
    # A checkpoint on the CPU runs as its ONNX export: say so, without the server's cache path.
    failed = f"  \n{dn.note}" if "failed" in dn.note else ""
    via = " via its ONNX export" if dn.note and not failed else ""
    shown = Path(path).parent.name + "/" + Path(path).name  # run folders all hold a model.safetensors
    mode = f"  \nquality **{dn.quality}**" if dn.quality else ""
    gray = f"  \ngray images go to **{dn.gray_path.name}**" if dn.gray_path else ""
    return (f"**{shown}** ({dn.info.kind}, {dn.info.channels}-channel)  \nruns on **{backend_line}**{via}, "
            f"tiles {dn.tile}px x{dn.tile_batch}{mode}{gray}{failed}")


def output_dir() -> Path:
    """A fresh folder per result inside Gradio's own temp folder (so it is served without a
    copy); folders older than RESULTS_MAX_AGE_S are removed, so a long-running server's disk
    use stays bounded."""
    gradio_temp = os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio"
    base = Path(gradio_temp) / "denoiser-results"
    base.mkdir(parents=True, exist_ok=True)
    _prune_old_results(base)
    return Path(tempfile.mkdtemp(dir=base))


def _prune_old_results(base: Path) -> None:
    global _last_prune
    now = time.time()
    if now - _last_prune < 600:  # a directory scan per request would be wasted work
        return
    _last_prune = now
    for folder in base.iterdir():
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > RESULTS_MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another worker removed it first
            continue


def upload_path(image) -> str | None:
    # preprocess=False hands us Gradio's file dict; a plain path comes from Python callers.
    return image.get("path") if isinstance(image, dict) else image


def read_upload(path: str | None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    if not path:
        raise user_error("Upload an image first.")
    try:
        return read_image(path, max_pixels)
    except ImageError as e:  # say the file's name, not where the server keeps it
        raise user_error(f"Cannot use this file: {str(e).replace(str(path), Path(path).name)}") from None


def upload_summary(path: str | None, side: int = ESTIMATE_SIDE) -> str:
    """A line on a new upload: its size and kind, and its estimated noise level (`estimate-noise`),
    so a person sees what the model is dealing with. Raises user_error for a file we cannot use."""
    from denoiser.core.noise.estimate import estimate_channel_sigmas

    arr, info = read_upload(path)
    h, w = arr.shape[:2]
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    crop = arr[y0:y0 + side, x0:x0 + side]
    kind = "gray" if info.gray else "colour"
    about = f"{w}x{h} {kind}, {info.bits}-bit {info.format}"
    try:
        sigmas = estimate_channel_sigmas(crop)
    except ValueError as e:  # too small to tell; it can still be denoised
        return f"{about}  \nnoise level: cannot estimate ({e})"
    sigma = float(np.mean(sigmas))
    word = next(word for limit, word in NOISE_WORDS if sigma < limit)
    where = f", from a {crop.shape[1]}x{crop.shape[0]} centre crop" if crop.shape[:2] != arr.shape[:2] else ""
    channels = f"; per channel R {sigmas[0]:.1f}, G {sigmas[1]:.1f}, B {sigmas[2]:.1f}" if len(sigmas) == 3 else ""
    return (f"Estimated noise **σ ≈ {sigma:.1f}** ({word}) · {about}  \n"
            f"Gaussian-equivalent, on the 0-255 scale{channels}{where}")


def denoise_upload(image_path: str, strength: float, model_path: str, backend: str = "auto",
                   max_pixels: int = MAX_PIXELS, quality: str | None = None) -> dict:
    """Denoise an uploaded file. Returns paths of the PNG result (`png`), the download in the
    upload's format and bit depth (`download`), a browser-viewable input (`before`), and a
    line saying what ran and how long it took (`line`)."""
    arr, info = read_upload(image_path, max_pixels)
    strength = float(strength if strength is not None else 1.0)
    if not 0.0 <= strength <= 1.0:
        raise user_error("Strength must be between 0 and 1.")
    dn = load_for_ui(model_path, backend, quality)
    t = time.perf_counter()
    try:
        out = dn.denoise_array(arr, strength)
    except ValueError as e:  # e.g. a model that needs a noise level
        raise user_error(str(e)) from None
    seconds = time.perf_counter() - t
    folder, stem = output_dir(), Path(image_path).stem
    png = write_image(folder / f"{stem}_denoised.png", out, info)
    ext = EXTENSION_BY_FORMAT.get(info.format, ".png")
    download = png if ext == ".png" else write_image(folder / f"{stem}_denoised{ext}", out, info)
    before = image_path if info.format in BROWSER_FORMATS else str(write_image(folder / f"{stem}.png", arr, info))
    h, w = arr.shape[:2]
    kind = "gray" if info.gray else "colour"
    line = (f"{w}x{h} {kind}, {info.bits}-bit {info.format}: denoised in **{seconds:.2f} s** "
            f"({w * h / 1e6 / max(seconds, 1e-9):.2f} MP/s) with {dn.describe()}")
    return {"png": str(png), "download": str(download), "before": str(before), "line": line, "seconds": seconds}


def demo_spec(kind: str, level: float) -> str:
    """A noise spec for the demo's kind and 0-100 level; `noise_spec` has the grammar.

    Level means roughly "sigma on the 0-255 scale" for the additive kinds and maps onto the
    natural parameter of the others. A kind this table does not know (a preset, or one added
    later) runs with its own default ranges.
    """
    level = float(np.clip(level, 0, 100))
    specs = {
        "gaussian": f"gaussian:{level:g}",
        "poisson-gaussian": f"poisson-gaussian:shot={level:g},read={level / 4:g}",
        "correlated": f"correlated:sigma={level:g},scale=1",
        "speckle": f"speckle:{level:g}",
        "salt-pepper": f"salt-pepper:{level / 400:g}",
        "jpeg": f"jpeg:{max(1, round(100 - level))}",
    }
    return specs.get(kind, kind)


def add_noise(image_path: str, spec: str, seed: int) -> tuple[str, dict]:
    """Make a noisy copy of a clean upload; return its path and the reference for PSNR."""
    import torch

    from denoiser.core.noise.ops import parse_noise_spec, synthesize

    arr, info = read_upload(image_path, NOISE_DEMO_MAX_PIXELS)
    try:
        cfg = parse_noise_spec(spec or "gaussian:25", quantize_prob=0.0)  # write_image rounds to the file's depth
    except ValueError as e:
        raise user_error(f"Noise: {e}") from None
    clean = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    gen = torch.Generator().manual_seed(int(seed or 0))
    noisy = synthesize(clean, cfg, gen)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    folder = output_dir()
    stem = Path(image_path).stem
    clean_png = write_image(folder / f"{stem}_clean.png", arr, info)
    noisy_png = write_image(folder / f"{stem}_noisy.png", np.ascontiguousarray(noisy), info)
    reference = {"clean": str(clean_png), "noisy_sha256": file_sha256(str(noisy_png)), "spec": cfg.spec}
    return str(noisy_png), reference


def psnr_line(reference: dict | None, input_path: str | None, output_path: str) -> str:
    """PSNR of input and output against the clean image, if the input is the demo's noisy copy."""
    if not reference or not input_path or file_sha256(input_path) != reference.get("noisy_sha256"):
        return ""
    import torch

    from denoiser.core.metrics import psnr

    def tensor(path: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(read_image(path)[0].transpose(2, 0, 1)))[None]

    clean = tensor(reference["clean"])
    before = psnr(tensor(input_path), clean).item()
    after = psnr(tensor(output_path), clean).item()
    return f"PSNR against the clean image ({reference['spec']}): {before:.2f} dB noisy, **{after:.2f} dB denoised**"


def inspect_region(before_path: str, after_path: str, x: int, y: int, size: int = REGION) -> tuple[str, str]:
    """Crops of the same region of input and result, at 100 % (one image pixel per pixel)."""
    before, info = read_upload(before_path)
    after, _ = read_upload(after_path)
    h, w = after.shape[:2]
    if before.shape[:2] != (h, w):
        raise user_error("The result does not belong to this input: denoise it again.")
    half = size // 2
    x0 = int(np.clip(x - half, 0, max(0, w - size)))
    y0 = int(np.clip(y - half, 0, max(0, h - size)))
    crop = (slice(y0, y0 + size), slice(x0, x0 + size))
    view = replace(info, bits=8, alpha=None, exif=None)  # a screen view: 8-bit is all a display shows
    folder = output_dir()
    a = write_image(folder / f"before_{x0}_{y0}.png", np.ascontiguousarray(before[crop]), view)
    b = write_image(folder / f"after_{x0}_{y0}.png", np.ascontiguousarray(after[crop]), view)
    return str(a), str(b)
