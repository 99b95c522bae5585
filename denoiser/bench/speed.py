"""`denoiser bench`: speed and memory per backend x precision x image size, on this machine.

Every row goes through `Denoiser` (tiles, batching, clipping: what a user gets), on a fixed
random image, with the same tile size for every row so rows compare; each row in its own
process, timed in turns with the others (bench.rows, which also says how memory is measured).

Rows on the CPU: PyTorch eager FP32, ONNX Runtime FP32 / FP16 / INT8 (cpu target). With a
CUDA GPU: PyTorch eager FP32 and AMP (float16 autocast), and TensorRT FP32 / FP16 / INT8
engines. Ratios are against PyTorch eager FP32 on the same device, measured in the same run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from denoiser.bench.rows import machine, run_rows
from denoiser.core.config import PRECISIONS
from denoiser.deploy.backends import BACKENDS

SIZES = ("512x512", "1920x1080", "3840x2160")  # W x H, as people name frame sizes
DEFAULT_SIZES = SIZES[:2]
BENCH_BACKENDS = tuple(BACKENDS)  # rows name their backend; none is chosen for them


def prepare_artifacts(checkpoint: Path, workdir: Path, wanted: list[tuple[str, str, str]], calib_dir: str | None,
                      check_dir: str | None, tile_side: int, log=print) -> dict:
    """Export (or reuse) the ONNX files and engines the rows need; (backend, precision) -> path or error."""
    from denoiser.core.atomic import file_sha256
    from denoiser.core.checkpoint import load_model
    from denoiser.core.config import EngineProfile, ExportConfig
    from denoiser.core.metadata import read_sidecar
    from denoiser.deploy.export import export_onnx

    model, meta = load_model(checkpoint)
    sha = file_sha256(checkpoint)
    source = {"checkpoint": str(checkpoint), "sha256": sha, "metrics": meta.metrics}
    out: dict = {}

    def onnx(precision: str, target: str) -> Path:
        name = {"fp32": "fp32", "fp16": "fp16"}.get(precision, f"int8-{target}")
        path = workdir / f"{checkpoint.stem}-{name}.onnx"
        try:
            side = read_sidecar(path)
            if side.source is not None and side.source.sha256 == sha and side.sha256 == file_sha256(path):
                return path  # an export of this very checkpoint: reuse it
        except (OSError, ValueError):
            pass
        log(f"exporting {path.name} ...")
        fp32 = workdir / f"{checkpoint.stem}-fp32.onnx"
        cfg = ExportConfig(precision=precision, int8_target=target, calib_dir=calib_dir, check_dir=check_dir)
        try:
            export_onnx(model, path, cfg, source, from_fp32=fp32 if precision != "fp32" and fp32.is_file() else None)
        except RuntimeError as e:  # over its PSNR budget: still worth timing, and the sidecar says so
            if not path.is_file():
                raise
            log(f"  note: {e}")
        return path

    for backend, precision, device in wanted:
        key = (backend, precision)
        try:
            if backend == "torch":
                out[key] = checkpoint
            elif backend == "onnxruntime":
                out[key] = onnx(precision, "cpu" if device == "cpu" else "tensorrt")
            elif backend == "tensorrt":
                from denoiser.deploy.tensorrt import build_engine

                margin = -(-model.receptive_field // model.alignment) * model.alignment  # as tiling rounds it
                side = tile_side + 2 * margin  # the profile is tuned for exactly the tiles Denoiser sends
                engine = workdir / f"{checkpoint.stem}-{precision}.engine"
                profile = EngineProfile(min_batch=1, opt_batch=1, max_batch=4, min_hw=(16, 16),
                                        opt_hw=(side, side), max_hw=(side, side))
                build_engine(onnx(precision, "tensorrt"), engine, profile, workspace_mb=4096)
                out[key] = engine
        except Exception as e:  # noqa: BLE001 -- a row that cannot be prepared is reported, not fatal
            out[key] = e
    return out


def bench(checkpoint: str | Path, sizes=DEFAULT_SIZES, repeat: int = 3, warmup: int = 1, tile: int = 512,
          threads: int = 0, workdir: str | Path | None = None, backends=BENCH_BACKENDS,
          precisions=PRECISIONS, calib_dir: str | None = None, check_dir: str | None = None,
          log=print) -> dict:
    import torch

    from denoiser.deploy.backends import tensorrt_usable

    checkpoint = Path(checkpoint)
    threads = threads or len(os.sched_getaffinity(0))
    wanted = []
    if "torch" in backends:
        wanted.append(("torch", "fp32", "cpu"))
    if "onnxruntime" in backends:
        wanted += [("onnxruntime", p, "cpu") for p in precisions]
    if torch.cuda.is_available():
        if "torch" in backends:
            wanted += [("torch", "fp32", "cuda"), ("torch", "amp", "cuda")]
        if "tensorrt" in backends and tensorrt_usable():
            wanted += [("tensorrt", p, "cuda") for p in precisions]
    with tempfile.TemporaryDirectory(prefix="denoiser-bench-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        artifacts = prepare_artifacts(checkpoint, work, wanted, calib_dir, check_dir, tile, log)
        rows = []
        for size in sizes:  # fresh processes per size: each row's peak memory is that size's
            specs = []
            for backend, precision, device in wanted:
                art = artifacts.get((backend, precision)) if backend != "torch" else checkpoint
                base = {"backend": backend, "precision": precision, "size": size, "device": device}
                if isinstance(art, Exception):
                    rows.append({**base, "error": f"{type(art).__name__}: {art}"})
                else:
                    specs.append({**base, "artifact": str(art), "tile": tile, "threads": threads})
            log(f"{size}: {len(specs)} rows in turns, {warmup} warm-up + {repeat} timed runs each ...")
            rows += run_rows(specs, warmup, repeat, Path(tmp))
    for row in rows:  # speed-up against PyTorch eager FP32 on the same device and size
        ref = next((r for r in rows if r["backend"] == "torch" and r["precision"] == "fp32"
                    and r["device"] == row["device"] and r["size"] == row["size"] and "ms" in r), None)
        if ref and "ms" in row:
            row["speedup_vs_torch_fp32"] = round(ref["ms"] / row["ms"], 2)
    return {"machine": machine(), "model": str(checkpoint), "tile": tile, "threads": threads, "repeat": repeat,
            "warmup": warmup, "memory": "a fresh process per row; peak RSS while denoising (VmHWM, reset after "
                                        "loading); work = its rise over the RSS once loaded", "rows": rows}


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores / {m['threads']} threads"
             + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
             + f"; torch {m['torch']}, onnxruntime {m['onnxruntime']}" + (f", {m['tensorrt']}" if m.get("tensorrt") else ""),
             f"Model: `{result['model']}`; tiles {result['tile']} px; {result['threads']} threads; median of "
             f"{result['repeat']} runs after {result['warmup']} warm-up; memory: {result['memory']}.", "",
             "| backend | precision | device | size | ms / image | MP/s | peak RSS MB | work RSS MB | GPU peak MB "
             "| vs PyTorch FP32 |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['precision']} | {r['device']} | {r['size']} | error: {r['error']} |"
                         " | | | | |")
            continue
        lines.append(f"| {r['backend']} | {r['precision']} | {r['device']} | {r['size']} | {r['ms']:.0f} | "
                     f"{r['mp_per_s']:.2f} | {r['peak_rss_mb']} | {r['work_rss_mb']} | {r.get('gpu_peak_mb', '')} | "
                     f"{r.get('speedup_vs_torch_fp32', '')} |")
    return "\n".join(lines) + "\n"
