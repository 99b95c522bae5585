"""The ONNX exports a checkpoint runs as on the CPU, made once and cached.

A checkpoint loaded on ONNX Runtime runs as an export of that very checkpoint: the .onnx
beside it when its sidecar says it was exported from these bytes (same SHA-256) and passed
its check, else one exported once into the cache folder (`onnx_cache_dir`), named by the
checkpoint's SHA-256. Its INT8 export (quality.py decides when it runs) is cached there too,
per CPU kind (8- or 7-bit weights), with its measured reach (reach.py) in its sidecar.

Every file lands with its sidecar as a pair (core/atomic.py), the sidecar last: concurrent
processes never see half an export, and a sidecar always describes the file beside it.
Reading the cache takes the JSON sidecars alone: no torch, no onnx (see quality.cached_cpu_choice).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from denoiser.core.atomic import atomic_write_pair, file_sha256, sidecar_path
from denoiser.core.metadata import ExportSidecar
from denoiser.core.metadata import read_sidecar as read_export_sidecar


def onnx_cache_dir() -> Path:
    """$DENOISER_CACHE, else $XDG_CACHE_HOME/denoiser, else ~/.cache/denoiser."""
    if os.environ.get("DENOISER_CACHE"):
        return Path(os.environ["DENOISER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "denoiser"


def read_sidecar(artifact: Path) -> ExportSidecar | None:
    """The artifact's sidecar; None where there is none or it is damaged (then it is exported again)."""
    try:
        return read_export_sidecar(artifact)
    except (OSError, ValueError):
        return None


def exported_from(onnx_path: Path, checkpoint_sha: str) -> bool:
    """`onnx_path` is an FP32 export of the checkpoint with this SHA-256 that passed its check."""
    side = read_sidecar(onnx_path)
    return (onnx_path.is_file() and side is not None and side.source is not None
            and side.source.sha256 == checkpoint_sha and side.passed
            and (side.precision or "fp32") == "fp32")  # an FP16/INT8 file must not pass as fp32


def cached_fp32(path: Path, sha: str) -> Path | None:
    """The checkpoint's FP32 export, beside it or in the cache, where one was made."""
    return next((p for p in (path.with_suffix(".onnx"), onnx_cache_dir() / f"{sha}.onnx") if exported_from(p, sha)),
                None)


def onnx_for_checkpoint(path: Path, model: Any = None) -> Path:
    """An ONNX export of this very checkpoint: the one beside it, or one in the cache (exported once).

    The export is checked before it lands (export_onnx raises if its check fails, and then
    nothing lands in the cache).
    """
    from denoiser.core.checkpoint import load_checkpoint
    from denoiser.deploy.export import export_onnx

    sha = file_sha256(path)
    found = cached_fp32(path, sha)
    if found is not None:
        return found
    if model is None:
        model = load_checkpoint(path)[0]
    target = onnx_cache_dir() / f"{sha}.onnx"
    source = {"checkpoint": str(path), "sha256": sha}
    return atomic_write_pair(target, lambda tmp: export_onnx(model, tmp, source=source))


# Bumped when the INT8 lowering changes what it makes of the same checkpoint, so an upgrade does
# not keep running the old file: 2 = residual sums read 8-bit conv outputs, percentile calibration.
INT8_RECIPE = 2


def int8_cache_path(sha: str) -> Path:
    from denoiser.deploy.cpu_features import int8_weight_bits

    return onnx_cache_dir() / f"{sha}-int8-cpu-w{int8_weight_bits()}-r{INT8_RECIPE}.onnx"


def int8_ready(path: Path, side: ExportSidecar | None, sha: str) -> bool:
    return (path.is_file() and side is not None and side.source is not None and side.source.sha256 == sha
            and side.reach is not None)


def int8_for_checkpoint(path: Path, max_loss_db: float, model: Any = None,
                        fp32_onnx: Path | None = None) -> tuple[Path, ExportSidecar]:
    """The checkpoint's full-INT8 CPU export (weights as wide as this CPU runs exactly) and its
    sidecar: made once into the cache, checked (at most `max_loss_db` below FP32 on its check
    images), with the measured reach recorded.

    Cached whether or not its check passed (the sidecar says), so a model whose INT8 loses too
    much is not exported again on every start.
    """
    from denoiser.core.checkpoint import load_checkpoint
    from denoiser.core.config import ExportConfig
    from denoiser.deploy.cpu_features import int8_weight_bits

    sha = file_sha256(path)
    target = int8_cache_path(sha)
    side = read_sidecar(target)
    if int8_ready(target, side, sha):
        return target, side
    if model is None:
        model = load_checkpoint(path)[0]
    fp32_onnx = fp32_onnx or onnx_for_checkpoint(path, model)
    cfg = ExportConfig(precision="int8", int8_target="cpu", int8_weight_bits=int8_weight_bits(),
                       int8_max_loss_db=max_loss_db, auto_mixed=False)
    atomic_write_pair(target, lambda tmp: _export_int8(model, tmp, cfg, {"checkpoint": str(path), "sha256": sha},
                                                       fp32_onnx))
    return target, read_sidecar(target)


def _export_int8(model: Any, tmp: Path, cfg: Any, source: dict, fp32_onnx: Path) -> None:
    """The INT8 export at `tmp`, its measured reach added to its sidecar."""
    from denoiser.deploy.backends import OnnxRuntimeBackend
    from denoiser.deploy.export import export_onnx
    from denoiser.run.reach import measure_reach

    try:
        export_onnx(model, tmp, cfg, source=source, from_fp32=fp32_onnx)
    except RuntimeError:  # over its budget: the file and the sidecar with the numbers are there
        if not sidecar_path(tmp).is_file():
            raise
    reach = measure_reach(OnnxRuntimeBackend(tmp, "int8"), model.cfg.channels, model.alignment,
                          model.receptive_field)
    side = replace(read_export_sidecar(tmp), reach=reach).to_dict()
    sidecar_path(tmp).write_text(json.dumps(side, indent=2))
