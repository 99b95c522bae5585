"""ONNX export that checks itself: FP32, FP16 or INT8 (the precision ladder in docs/ARCHITECTURE.md).

The graph has dynamic batch, height and width, and carries the model config and its
precision in its metadata (key "denoiser"), so `Denoiser.load(model.onnx)` needs no flags.
FP16 and INT8 files are lowered from a fresh FP32 export (lower.py). Every export is
checked twice and the results go into a JSON sidecar (`OUT.onnx.json`) beside the file:
  check:   ONNX Runtime at an odd size, batch 2, against PyTorch (the graph is right);
  quality: PSNR on held-out clean images under the benchmark protocol, against clean and
           against the FP32 PyTorch model (what the precision costs), with a budget per rung.
An export that fails either check raises after writing its sidecar, so the numbers can be read.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from denoiser.core.atomic import atomic_write_pair, file_sha256, sidecar_path
from denoiser.core.checkpoint import load_model
from denoiser.core.config import PRECISIONS, ExportConfig, to_dict
from denoiser.core.metadata import CheckpointMeta, ExportMeta, ExportSidecar
from denoiser.core.noise.spec import parse_spec
from denoiser.core.version import __version__

INPUT_NAME, OUTPUT_NAME = "input", "output"


def _export_fp32_graph(model: nn.Module, path: Path, cfg: ExportConfig) -> None:
    import onnx

    c = model.cfg.channels
    example = torch.rand(1, c, 2 * model.alignment, 3 * model.alignment)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_shapes={"x": dims}, opset_version=cfg.opset, external_data=False, dynamo=True,
                      verbose=False)
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, cfg.ir_version)
    onnx.save(proto, str(path))


def export_onnx(model: nn.Module, path: str | Path, cfg: ExportConfig = ExportConfig(),
                source: dict | None = None, from_fp32: str | Path | None = None) -> dict:
    """Export `model` to ONNX at `path` in `cfg.precision`, check it, write the sidecar; return the sidecar.

    `from_fp32`: an FP32 export of this same model to lower instead of exporting again (the
    exporter takes a minute on a busy 2-core machine); it is checked against `model` first.
    The file and its sidecar replace `path` and its sidecar together once both are written
    (core/atomic.py): an export that stops half-way leaves the old pair, or nothing.
    """
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r}; choose from {', '.join(PRECISIONS)}")
    path = Path(path)
    model = model.float().eval().cpu()
    made: dict = {}
    atomic_write_pair(path, lambda tmp: made.update(side=_export_checked(model, tmp, cfg, source, from_fp32)))
    side, check, quality = made["side"], made["side"]["check"], made["side"]["quality"]
    if not check["passed"]:
        raise RuntimeError(f"exported ONNX differs from PyTorch by {check['max_abs_diff']:.2e} "
                           f"(tolerance {cfg.check_tolerance:.0e}); see {sidecar_path(path)}")
    if not quality["passed"]:
        raise RuntimeError(f"{cfg.precision} export loses {quality['loss_db']:.3f} dB PSNR against FP32 on "
                           f"{quality['images']} (budget {quality['budget_db']} dB); see {sidecar_path(path)}"
                           + (" -- keep sensitive layers in float with --keep-float" if cfg.precision == "int8" else ""))
    return side


def _export_checked(model: nn.Module, path: Path, cfg: ExportConfig, source: dict | None,
                    from_fp32: str | Path | None) -> dict:
    """Write the ONNX file at `path` and its sidecar beside it; return the sidecar (its checks
    may have failed: the caller raises once the pair is in place, so the numbers can be read)."""
    import shutil

    import onnx

    from denoiser.deploy import imagecheck

    t0 = time.time()
    checks = imagecheck.check_images(cfg.check_dir)
    with tempfile.TemporaryDirectory(prefix="denoiser-export-") as work:
        fp32 = path if cfg.precision == "fp32" else Path(work) / "fp32.onnx"
        if from_fp32 is not None:
            given = check_against_torch(model, Path(from_fp32), ExportConfig(check_tolerance=cfg.check_tolerance))
            if read_export_meta(from_fp32).precision != "fp32" or not given["passed"]:
                raise ValueError(f"{from_fp32} is not an FP32 export of this model (max abs diff to it "
                                 f"{given['max_abs_diff']:.1e}); export without it")
            shutil.copyfile(from_fp32, fp32)
        else:
            _export_fp32_graph(model, fp32, cfg)
        lowering = _lower(model, fp32, path, cfg, checks) if cfg.precision != "fp32" else {}
    proto = onnx.load(str(path))
    int8, mixed = cfg.precision == "int8", cfg.precision != "fp32"
    meta = ExportMeta(model=to_dict(model.cfg), alignment=model.alignment, receptive_field=model.receptive_field,
                      activation_bytes_per_pixel=model.activation_bytes_per_pixel(), precision=cfg.precision,
                      code_version=__version__, int8_target=cfg.int8_target if int8 else None,
                      # 8-bit weights saturate on CPUs without VNNI
                      int8_weight_bits=lowering["weight_bits"] if int8 else None,
                      # mixed precision: which layers, and in what
                      float_layers=lowering["float_layers"] if mixed else None,
                      float_precision=lowering["float_precision"] if mixed else None).to_dict()
    onnx.helper.set_model_props(proto, {"denoiser": json.dumps(meta)})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))

    check = check_against_torch(model, path, cfg)
    quality = check_quality(model, path, cfg, checks)
    side = {**meta, "file": path.name, "sha256": file_sha256(path), "opset": cfg.opset,
            "ir_version": proto.ir_version, "dynamic_axes": ["batch", "height", "width"],
            "export_seconds": round(time.time() - t0, 2), "check": check, "quality": quality,
            "lowering": lowering, "source": source or {}}
    ExportSidecar.from_dict(side, sidecar_path(path))  # what a reader will find: checked on the way out
    sidecar_path(path).write_text(json.dumps(side, indent=2))
    return side


def _lower(model: nn.Module, fp32: Path, out: Path, cfg: ExportConfig, checks) -> dict:
    """FP32 ONNX -> FP16 or INT8 ONNX at `out`; return what was done, for the sidecar."""
    from denoiser.deploy import imagecheck, lower

    names = lower.layer_names(fp32)  # ONNX node -> PyTorch layer, both accepted in keep_float
    by_layer = {layer: node for node, layer in names.items()}
    unknown = [k for k in cfg.keep_float if k not in names and k not in by_layer]
    if unknown:
        raise ValueError(f"--keep-float: no convolution named {', '.join(unknown)}; layers: {', '.join(by_layer)}")
    own = [by_layer[k] for k in model.keep_float if k in by_layer]  # the architecture's (nets/__init__.py)
    keep = [*own, *(by_layer.get(k, k) for k in cfg.keep_float if by_layer.get(k, k) not in own)]
    if cfg.precision == "fp16":
        info = lower.convert_fp16(fp32, out, keep)
        return {**info, "float_layers": [names.get(n, n) for n in keep], "float_precision": "fp32"}

    if cfg.int8_target not in lower.INT8_TARGETS:
        raise ValueError(f"unknown INT8 target {cfg.int8_target!r}; choose from {', '.join(lower.INT8_TARGETS)}")
    c = model.cfg.channels
    calib = imagecheck.calibration_images(cfg.calib_dir, checks)
    images = [np.round(im).astype(np.uint8) for im in imagecheck.to_model_channels(calib, c)]
    noise = None if cfg.calib_noise == "auto" else cfg.calib_noise  # no checkpoint to ask (with_training_noise)
    batches = lower.calibration_batches(images, cfg.calib_crops, cfg.calib_crop, cfg.calib_sigmas, seed=1,
                                        noise=noise, noise_share=cfg.calib_noise_share)
    info = {"calibration": {"images": calib.name, "files": len(calib.images), "crops": cfg.calib_crops,
                            "crop": cfg.calib_crop, "sigmas": list(cfg.calib_sigmas), "method": cfg.calib_method,
                            "noise": noise, "noise_share": cfg.calib_noise_share if noise else 0.0}}
    info.update(lower.quantize_int8(fp32, out, cfg.int8_target, batches, keep, cfg.calib_method,
                                   weight_bits=cfg.int8_weight_bits))
    if cfg.keep_float or not cfg.auto_mixed:  # the user chose the layers
        return {**info, "float_layers": [names.get(n, n) for n in keep]}
    # Is full INT8 within budget? Judged on a tuning set drawn from the calibration images,
    # not on the check set (choosing layers on the reported images would flatter the report).
    tuning = imagecheck.protocol_set(imagecheck.ImageSet("tuning", [im[:192, :192] for im in images[:8]], []),
                                     cfg.check_sigma, seed=424242)
    ref = imagecheck.score(imagecheck.run_all(imagecheck.torch_runner(model), tuning, c), tuning)["psnr"]

    def loss_db(path: Path) -> float:
        return ref - imagecheck.score(imagecheck.run_all(imagecheck.onnx_runner(path), tuning, c), tuning)["psnr"]

    kept, trials = lower.find_sensitive_layers(fp32, cfg.int8_target, batches, loss_db, cfg.int8_max_loss_db / 2,
                                               cfg.calib_method, cfg.max_float_layers, tuple(own),
                                               cfg.int8_weight_bits)
    if kept != keep:
        info.update(lower.quantize_int8(fp32, out, cfg.int8_target, batches, kept, cfg.calib_method,
                                       weight_bits=cfg.int8_weight_bits))
    info["sensitivity"] = {"tuning_images": f"{len(tuning.clean)} crops of the calibration images, sigma "
                                            f"{cfg.check_sigma:g}", "budget_db": cfg.int8_max_loss_db / 2,
                           "trials": trials}
    return {**info, "float_layers": [names[n] for n in kept]}


def check_against_torch(model: nn.Module, path: Path, cfg: ExportConfig) -> dict:
    """Run the ONNX file with ONNX Runtime at an odd size (batch 2) and compare with PyTorch.

    FP32 must match within the tolerance; FP16/INT8 are judged on images (check_quality), so
    here they only have to run at that size and give finite values (the difference is recorded).
    """
    import onnxruntime as ort

    h, w = cfg.check_size
    x = torch.rand(2, model.cfg.channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    diff = float(np.abs(out - ref).max())
    exact = cfg.precision == "fp32"
    ok = out.shape == ref.shape and out.dtype == np.float32 and bool(np.isfinite(out).all())
    return {"size": [h, w], "batch": 2, "max_abs_diff": diff, "tolerance": cfg.check_tolerance if exact else None,
            "passed": bool(ok and (diff <= cfg.check_tolerance or not exact))}


def check_quality(model: nn.Module, path: Path, cfg: ExportConfig, checks=None) -> dict:
    """PSNR of the ONNX file and of the FP32 PyTorch model on the held-out check set."""
    from denoiser.deploy import imagecheck

    checks = checks or imagecheck.check_images(cfg.check_dir)
    pset = imagecheck.protocol_set(checks, cfg.check_sigma, seed=0)
    c = model.cfg.channels
    ref_out = imagecheck.run_all(imagecheck.torch_runner(model), pset, c)
    ref = imagecheck.score(ref_out, pset)
    got = imagecheck.score(imagecheck.run_all(imagecheck.onnx_runner(path), pset, c), pset, ref_out)
    budget = {"fp32": 0.01, "fp16": cfg.fp16_max_loss_db, "int8": cfg.int8_max_loss_db}[cfg.precision]
    loss = ref["psnr"] - got["psnr"]
    return {"images": f"{checks.name} ({len(checks.images)} images)", "sigma": cfg.check_sigma,
            "protocol": "clip(round(clean + N(0, sigma)), 0, 255), seed = index; 8-bit outputs",
            "psnr_fp32": round(ref["psnr"], 4), "psnr": round(got["psnr"], 4),
            "psnr_vs_fp32": round(got["psnr_vs_fp32"], 3), "loss_db": round(loss, 4), "budget_db": budget,
            "passed": bool(loss <= budget), "per_image": got["per_image"], "per_image_fp32": ref["per_image"]}


def with_training_noise(cfg: ExportConfig, meta: CheckpointMeta | None) -> ExportConfig:
    """`cfg` with calib_noise "auto" made concrete: the noise mix the checkpoint records it was
    trained on, where that is a spec this version parses; else None (Gaussian crops only)."""
    if cfg.calib_noise != "auto":
        return cfg
    noise = ((meta.run if meta else None) or {}).get("noise")
    spec = noise.get("spec") if isinstance(noise, dict) else None
    if not isinstance(spec, str):
        return replace(cfg, calib_noise=None)
    try:
        parse_spec(spec)
    except ValueError:  # a newer or foreign kind: calibrate as before rather than refuse to export
        return replace(cfg, calib_noise=None)
    return replace(cfg, calib_noise=spec)


def export_checkpoint(checkpoint: str | Path, out: str | Path, cfg: ExportConfig = ExportConfig(),
                      from_fp32: str | Path | None = None) -> dict:
    model, meta = load_model(checkpoint)
    cfg = with_training_noise(cfg, meta)
    source = {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint), "metrics": meta.metrics}
    return export_onnx(model, out, cfg, source=source, from_fp32=from_fp32)


def read_onnx_metadata(path: str | Path) -> dict:
    """The "denoiser" metadata of an exported ONNX file (model config, alignment, precision...);
    ValueError with a message for a file that is not one (damaged, foreign, no metadata)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise ValueError(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if "denoiser" not in props:
        raise ValueError(f"{path}: ONNX file without denoiser metadata (export it with `denoiser export`)")
    try:
        meta = json.loads(props["denoiser"])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: damaged denoiser metadata in the ONNX file (not a JSON object)")
    return meta


def read_export_meta(path: str | Path) -> ExportMeta:
    """`read_onnx_metadata`, typed: also MetadataError (a ValueError) for a missing or mistyped field."""
    return ExportMeta.from_dict(read_onnx_metadata(path), path)
