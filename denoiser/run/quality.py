"""Quality modes, as Open Image Denoise has them: fast, balanced, high.

    fast      INT8 (ONNX Runtime on the CPU, full 8-bit weights where the CPU has VNNI), with
              tile margins set from the model's measured reach instead of its receptive field
    balanced  FP32: the model as trained, tiles that agree with the whole image exactly
    high      FP32 geometric self-ensemble: the 8 flips and 90-degree rotations of each tile,
              denoised and turned back, averaged (8x the work; tiled the same way)

No mode named (None): a checkpoint on the CPU runs its INT8 export where that export's own
check passed (at most AUTO_INT8_MAX_LOSS_DB below FP32 on its check images), else FP32, and
the Denoiser's note says which and why. The INT8 export is made once per checkpoint and
CPU kind (8- or 7-bit weights) and cached beside the FP32 export (export_cache.py).

Measured gains and costs (scripts/bench_quality_modes.py, BENCHMARKS.md) are in MODE_HELP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from denoiser.core.atomic import file_sha256
from denoiser.core.metadata import ExportSidecar
from denoiser.run.export_cache import (
    cached_fp32,
    int8_cache_path,
    int8_for_checkpoint,
    int8_ready,
    onnx_for_checkpoint,
    read_sidecar,
)
from denoiser.run.reach import measure_reach

QUALITIES = ("fast", "balanced", "high")
AUTO_INT8_MAX_LOSS_DB = 0.1  # what the automatic choice of INT8 may cost on the export's check images
# One line per mode for --help and the app; the numbers are measured (BENCHMARKS.md, "Quality modes").
MODE_HELP = {
    "fast": "INT8 (full 8-bit weights on CPUs with VNNI), tile margins from the model's measured reach: "
            "-0.06 dB on Set12 (sigma 25), -0.34 dB on SIDD12 (real noise; on its cleanest photos), "
            "2.4-2.6x the speed of balanced with VNNI, 1.5x without",
    "balanced": "FP32, the model as trained; tiles agree with the whole image exactly",
    "high": "FP32 self-ensemble, the 8 flips/rotations of every tile averaged: +0.21 dB on Set12 (sigma 25), "
            "+0.21 dB on SIDD12, 7.7-7.9x the time of balanced",
}


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

    if dn.info.record.int8_weight_bits == 8 and getattr(backend, "providers", ["CPU"])[0].startswith("CPU") \
            and not has_vnni():  # u8 x s8 pairs saturate in int16 there (lower.py)
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


Choice = tuple[Path, str, "int | None", str, dict]  # (ONNX file, precision, margin or None, note, its metadata)


def cpu_choice(path: Path, model: Any, quality: str | None) -> Choice:
    """For a checkpoint on ONNX Runtime's CPU: (ONNX file, precision, tile margin or None for
    the receptive field, a note saying what was chosen and why, the file's metadata);
    exports what is missing (export_cache.py)."""
    fp32 = onnx_for_checkpoint(path, model)
    if quality in ("balanced", "high"):
        return _decide(fp32, read_sidecar(fp32), None, None, quality)
    int8, side = int8_for_checkpoint(path, AUTO_INT8_MAX_LOSS_DB, model, fp32)
    return _decide(fp32, read_sidecar(fp32), int8, side, quality)


def cached_cpu_choice(path: Path, quality: str | None) -> Choice | None:
    """`cpu_choice` from the cache alone, or None where an export is missing. Reads only JSON
    sidecars: neither torch nor onnx is imported (about 1-3 s of a CLI run on a 2-core CPU)."""
    sha = file_sha256(path)
    fp32 = cached_fp32(path, sha)
    if fp32 is None:
        return None
    if quality in ("balanced", "high"):
        return _decide(fp32, read_sidecar(fp32), None, None, quality)
    int8 = int8_cache_path(sha)
    side = read_sidecar(int8)
    return _decide(fp32, read_sidecar(fp32), int8, side, quality) if int8_ready(int8, side, sha) else None


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
