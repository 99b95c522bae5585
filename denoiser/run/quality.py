"""Quality modes, as Open Image Denoise has them: fast, balanced, high.

    fast      INT8 (ONNX Runtime on the CPU, full 8-bit weights where the CPU has VNNI), with
              tile margins set from the model's measured reach instead of its receptive field
    balanced  FP32: the model as trained, tiles that agree with the whole image exactly
    high      FP32 geometric self-ensemble: the 8 flips and 90-degree rotations of each tile,
              denoised and turned back, averaged (8x the work; tiled the same way)

No mode named (None): a checkpoint on the CPU runs its INT8 export where that export's own
check passed (at most AUTO_INT8_MAX_LOSS_DB below FP32 on its check images), else FP32, and
the Denoiser's note says which and why. The INT8 export is made once per checkpoint and
CPU kind (8- or 7-bit weights) and cached beside the FP32 export (inference.onnx_cache_dir).

Measured gains and costs (scripts/bench_quality_modes.py, BENCHMARKS.md) are in MODE_HELP.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from denoiser.core.atomic import file_sha256
from denoiser.core.metadata import ExportSidecar, read_sidecar, sidecar_path

QUALITIES = ("fast", "balanced", "high")
AUTO_INT8_MAX_LOSS_DB = 0.1  # what the automatic choice of INT8 may cost on the export's check images
# One line per mode for --help and the app; the numbers are measured (BENCHMARKS.md, "Quality modes").
MODE_HELP = {
    "fast": "INT8 (full 8-bit weights on CPUs with VNNI), tile margins from the model's measured reach: "
            "-0.03 dB on Set12 (sigma 25), -0.12 dB on SIDD12, 2.3-2.8x the speed of balanced",
    "balanced": "FP32, the model as trained; tiles agree with the whole image exactly",
    "high": "FP32 self-ensemble, the 8 flips/rotations of every tile averaged: +0.14 dB on Set12 (sigma 25), "
            "+0.09 dB on SIDD12, 7-8x the time of balanced",
}
# Tile margins of the fast mode: the distance at which a pixel's output no longer changes by
# more than this when the context beyond it is cut off (a quarter of an 8-bit step).
REACH_TOLERANCE = 0.25 / 255


def check_quality(quality: str | None) -> None:
    if quality is not None and quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; choose from {', '.join(QUALITIES)}")


class SelfEnsemble:
    """A backend run on the 8 flips and 90-degree rotations of its input, each result turned
    back and all averaged (the "x8" self-ensemble of the super-resolution papers).

    It wraps whatever runs the tiles, so tiling and batching stay the same: each tile is
    denoised 8 times, in 8 calls of the same batch (rotated tiles have their sides swapped).
    """

    def __init__(self, backend: Any):
        self.inner = backend
        self.name, self.precision = backend.name, backend.precision
        self.profile = getattr(backend, "profile", None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        acc = np.zeros(x.shape, np.float32)
        for k in range(4):  # k quarter turns, each with and without a left-right flip
            for flip in (False, True):
                t = np.rot90(x, k, axes=(2, 3))
                t = t[..., ::-1] if flip else t
                y = self.inner(np.ascontiguousarray(t))
                y = y[..., ::-1] if flip else y
                acc += np.rot90(y, -k, axes=(2, 3))
        acc *= np.float32(1 / 8)
        return acc

    def describe(self) -> str:
        return f"{self.inner.describe()}, x8 self-ensemble (flips + rotations)"


class Float16Autocast:
    """PyTorch on CUDA under float16 autocast: the fast mode on a GPU (tensor cores)."""

    name, precision = "torch", "amp"

    def __init__(self, backend: Any):
        self.inner, self.device, self.model = backend, backend.device, backend.model

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16):
            y = self.model(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()

    def describe(self) -> str:
        return f"PyTorch AMP (float16 autocast) on {self.device}"


def with_quality(dn: Any, quality: str | None) -> Any:
    """Finish a loaded Denoiser for `quality`: the self-ensemble for high, autocast for fast on
    a GPU, the measured reach for an INT8 file given as such; refuse what cannot be done."""
    dn.quality = quality
    backend, kind = dn.backend, dn.info.kind
    from denoiser.deploy.cpu_features import has_vnni

    if dn.info.meta.get("int8_weight_bits") == 8 and getattr(backend, "providers", ["CPU"])[0].startswith("CPU") \
            and not has_vnni():  # u8 x s8 pairs saturate in int16 there (quantize.py)
        dn.note = (dn.note + "; " if dn.note else "") + ("this INT8 file has 8-bit weights and this CPU lacks VNNI: "
                                                         "expect errors; export with --weight-bits 7")
    if quality == "high":
        dn.backend = SelfEnsemble(backend)
    elif quality == "fast" and backend.name == "torch":
        if backend.device.type != "cuda":
            raise ValueError("quality fast runs INT8 on ONNX Runtime: use backend auto or onnxruntime on a CPU")
        dn.backend = Float16Autocast(backend)
    elif quality and kind == "onnx":
        want = "int8" if quality == "fast" else "fp32"
        if dn.info.precision != want:
            raise ValueError(f"quality {quality} runs {want.upper()}, and {Path(dn.info.path).name} is "
                             f"{dn.info.precision}: load the checkpoint (its {want.upper()} export is made once and "
                             f"cached) or an {want.upper()} .onnx")
        if quality == "fast":
            dn.margin = measure_reach(backend, dn.info.channels, dn.info.alignment, dn.info.receptive_field)
            dn.plan()
    return dn


def measure_reach(run, channels: int, alignment: int, receptive_field: int, core: int = 32,
                  tolerance: float = REACH_TOLERANCE) -> int:
    """The smallest tile margin (a multiple of `alignment`, at most the receptive field rounded
    up) at which cutting the context off changes no output pixel by more than `tolerance`.

    Probes: the product's sample images (or procedural ones) made noisy at sigma 5, 25 and 50,
    a `core`-pixel square in the middle of each, run once with the full receptive field of
    context and then with each smaller margin. A tile's core sees exactly this cut-off (the
    model's own zero padding where the tile ends), so the margin holds for tiles of any size.
    """
    from denoiser.core.noise.ops import protocol_noisy_uint8
    from denoiser.deploy.imagecheck import sample_images, to_model_channels
    from denoiser.run.tiling import round_up

    full = round_up(receptive_field, alignment)
    side = core + 2 * full
    probes = []
    for i, (im, sigma) in enumerate(zip(to_model_channels(sample_images(), channels), (5.0, 25.0, 50.0))):
        h, w = im.shape[:2]
        y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
        crop = np.ascontiguousarray(im[y:y + side, x:x + side])
        if crop.shape[:2] != (side, side):
            crop = np.pad(crop, ((0, side - crop.shape[0]), (0, side - crop.shape[1]), (0, 0)), mode="reflect")
        noisy = protocol_noisy_uint8(crop, sigma, seed=i).astype(np.float32) / 255.0
        probes.append(np.ascontiguousarray(noisy.transpose(2, 0, 1))[None])
    refs = [run(p)[..., full:full + core, full:full + core] for p in probes]
    reach = full
    for margin in range(full - alignment, -1, -alignment):  # shrink while every probe still agrees
        cut = slice(full - margin, full + core + margin)
        worst = max(float(np.abs(run(np.ascontiguousarray(p[..., cut, cut]))[..., margin:margin + core,
                                                                           margin:margin + core] - r).max())
                    for p, r in zip(probes, refs))
        if worst > tolerance:
            break
        reach = margin
    return max(reach, alignment)


def int8_cache_path(sha: str) -> Path:
    from denoiser.deploy.cpu_features import int8_weight_bits
    from denoiser.run.inference import onnx_cache_dir

    return onnx_cache_dir() / f"{sha}-int8-cpu-w{int8_weight_bits()}.onnx"


def int8_for_checkpoint(path: Path, model: Any = None, fp32_onnx: Path | None = None) -> tuple[Path, dict]:
    """The checkpoint's full-INT8 CPU export (weights as wide as this CPU runs exactly) and its
    sidecar: made once into the cache, checked, with the measured reach recorded.

    Cached whether or not its check passed (the sidecar says), so a model whose INT8 loses too
    much is not exported again on every start. Written like the FP32 export: in a temp folder,
    then renamed, the sidecar last.
    """
    from denoiser.core.checkpoint import load_checkpoint
    from denoiser.core.config import ExportConfig
    from denoiser.deploy.cpu_features import int8_weight_bits
    from denoiser.deploy.export import export_onnx
    from denoiser.run.inference import onnx_for_checkpoint

    sha = file_sha256(path)
    target = int8_cache_path(sha)
    side = _read_side(target)
    if _int8_ready(target, side, sha):
        return target, side.to_dict()
    if model is None:
        model = load_checkpoint(path)[0]
    fp32_onnx = fp32_onnx or onnx_for_checkpoint(path, model)
    cfg = ExportConfig(precision="int8", int8_target="cpu", int8_weight_bits=int8_weight_bits(),
                       int8_max_loss_db=AUTO_INT8_MAX_LOSS_DB, auto_mixed=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        tmp_onnx = Path(tmp) / target.name
        try:
            export_onnx(model, tmp_onnx, cfg, source={"checkpoint": str(path), "sha256": sha}, from_fp32=fp32_onnx)
        except RuntimeError:  # over its budget: the file and the sidecar with the numbers are there
            if not sidecar_path(tmp_onnx).is_file():
                raise
        from denoiser.deploy.backends import OnnxRuntimeBackend

        reach = measure_reach(OnnxRuntimeBackend(tmp_onnx, "int8"), model.cfg.channels, model.alignment,
                              model.receptive_field)
        side = replace(read_sidecar(tmp_onnx), reach=reach).to_dict()
        sidecar_path(tmp_onnx).write_text(json.dumps(side, indent=2))
        os.replace(tmp_onnx, target)
        os.replace(sidecar_path(tmp_onnx), sidecar_path(target))
    return target, side


def _int8_ready(path: Path, side: ExportSidecar | None, sha: str) -> bool:
    return (path.is_file() and side is not None and side.source is not None and side.source.sha256 == sha
            and side.reach is not None)


def _read_side(onnx_path: Path) -> ExportSidecar | None:
    """The export's sidecar; None where there is none or it is damaged (then it is exported again)."""
    try:
        return read_sidecar(onnx_path)
    except (OSError, ValueError):
        return None


Choice = tuple[Path, str, "int | None", str, dict]  # (ONNX file, precision, margin or None, note, its metadata)


def cpu_choice(path: Path, model: Any, quality: str | None) -> Choice:
    """For a checkpoint on ONNX Runtime's CPU: (ONNX file, precision, tile margin or None for
    the receptive field, a note saying what was chosen and why, the file's metadata);
    exports what is missing."""
    from denoiser.run.inference import onnx_for_checkpoint

    fp32 = onnx_for_checkpoint(path, model)
    if quality in ("balanced", "high"):
        return _decide(fp32, _read_side(fp32), None, None, quality)
    int8, side = int8_for_checkpoint(path, model, fp32)
    return _decide(fp32, _read_side(fp32), int8, ExportSidecar.from_dict(side, sidecar_path(int8)), quality)


def cached_cpu_choice(path: Path, quality: str | None) -> Choice | None:
    """`cpu_choice` from the cache alone, or None where an export is missing. Reads only JSON
    sidecars: neither torch nor onnx is imported (about 1-3 s of a CLI run on a 2-core CPU)."""
    from denoiser.run.inference import _exported_from, onnx_cache_dir

    sha = file_sha256(path)
    fp32 = next((p for p in (path.with_suffix(".onnx"), onnx_cache_dir() / f"{sha}.onnx") if _exported_from(p, sha)),
                None)
    if fp32 is None:
        return None
    if quality in ("balanced", "high"):
        return _decide(fp32, _read_side(fp32), None, None, quality)
    int8 = int8_cache_path(sha)
    side = _read_side(int8)
    return _decide(fp32, _read_side(fp32), int8, side, quality) if _int8_ready(int8, side, sha) else None


def _decide(fp32: Path, fp32_side: ExportSidecar | None, int8: Path | None, side: ExportSidecar | None,
            quality: str | None) -> Choice:
    fp32_meta = fp32_side.to_dict() if fp32_side else {}
    if int8 is None or side is None:
        return fp32, "fp32", None, f"ONNX export {fp32.name}", fp32_meta
    q = side.quality
    loss_db = q.loss_db if q and q.loss_db is not None else None
    loss = f"{float('nan') if loss_db is None else loss_db:.3f} dB below FP32 on {(q and q.images) or 'its check images'}"
    if quality == "fast":
        return int8, "int8", side.reach, f"INT8 export {int8.name} ({loss}); margins {side.reach} px", side.to_dict()
    if loss_db is not None and loss_db <= AUTO_INT8_MAX_LOSS_DB and side.passed:
        return int8, "int8", None, (f"INT8 export {int8.name}: its check passed ({loss}, at most "
                                    f"{AUTO_INT8_MAX_LOSS_DB} dB allowed)"), side.to_dict()
    return fp32, "fp32", None, (f"ONNX export {fp32.name} in FP32: the INT8 export's check failed ({loss}, at "
                                f"most {AUTO_INT8_MAX_LOSS_DB} dB allowed)"), fp32_meta
