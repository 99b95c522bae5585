"""`denoiser export`: a checkpoint to ONNX (FP32, FP16 or INT8, checked) and optionally a TensorRT engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from denoiser.cli.options import noise_spec
from denoiser.core.config import (
    CALIBRATION_METHODS,
    INT8_TARGETS,
    INT8_WEIGHT_BITS,
    PRECISIONS,
    EngineProfile,
    ExportConfig,
    parse_hw,
)


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("export", help="export a checkpoint to ONNX FP32/FP16/INT8 (and a TensorRT engine)",
                       description=(
                           "Export to ONNX (dynamic batch/height/width) and check it: against PyTorch at an odd "
                           "size, and by PSNR on held-out images (noisy as the benchmark protocol says) against "
                           "clean and against FP32, with a budget per precision. Results go to OUT.onnx.json."))
    X = ExportConfig
    e.add_argument("model", help="checkpoint (.safetensors)")
    e.add_argument("-o", "--output", help="output .onnx (default: beside the checkpoint, named by precision)")
    e.add_argument("--opset", type=int, default=X.opset)
    e.add_argument("--precision", choices=list(PRECISIONS), default=X.precision,
                   help="fp16: converted graph, float32 I/O, image path in float32; int8: Q/DQ, calibrated"
                        " (default %(default)s)")
    e.add_argument("--target", choices=list(INT8_TARGETS), default=X.int8_target,
                   help="int8 only. tensorrt: int8 activations with zero points 0 (what TensorRT needs); "
                        "cpu: uint8 activations, fastest on ONNX Runtime CPU, cannot become an engine (default %(default)s)")
    e.add_argument("--weight-bits", type=int, choices=list(INT8_WEIGHT_BITS), default=X.int8_weight_bits,
                   help="int8 --target cpu: 8-bit weights (exact only on CPUs with AVX-512 VNNI or AVX-VNNI), "
                        "7-bit (exact on every x86 CPU: for files that travel), 0 = what this CPU runs exactly "
                        "(default %(default)s)")
    g = e.add_argument_group("checks and calibration")
    g.add_argument("--check-dir", metavar="DIR", help="held-out clean images to check on (default: data/ samples)")
    g.add_argument("--check-sigma", type=float, default=X.check_sigma, help="noise sigma of the check, 0-255 (default %(default)s)")
    g.add_argument("--calib", metavar="DIR", help="int8: clean images to calibrate on, noise added on the fly "
                                                  "(default: procedural images + data/ samples not in the check set)")
    g.add_argument("--calib-crops", type=int, default=X.calib_crops, help="int8: calibration crops (default %(default)s)")
    g.add_argument("--calib-noise", metavar="SPEC", type=lambda t: t if t == "auto" else noise_spec(t),
                   help="int8: noise for half the calibration crops (the other half: Gaussian, sigma 5-50), as "
                        "`denoiser train --noise` takes it, or 'auto' for the mix the checkpoint was trained on "
                        "(default: Gaussian crops only)")
    g.add_argument("--calib-method", choices=list(CALIBRATION_METHODS), default=X.calib_method,
                   help="int8: how activation ranges are set (default %(default)s)")
    g.add_argument("--keep-float", nargs="+", default=[], metavar="LAYER",
                   help="mixed precision: layers kept out of int8 (in fp16 for --target tensorrt, fp32 for cpu) "
                        "or out of fp16 (in fp32), by PyTorch name as `--keep-float` reports them; added to "
                        "the layers the architecture itself keeps in float")
    g.add_argument("--no-auto-mixed", action="store_true",
                   help="int8: do not search for sensitive layers to keep in float when over budget")
    g.add_argument("--from-fp32", metavar="FP32.onnx", help="lower this FP32 export of MODEL instead of exporting "
                                                            "again (it is checked against MODEL first)")
    g = e.add_argument_group("TensorRT engine")
    P = EngineProfile
    g.add_argument("--engine", metavar="OUT.engine", help="also build a TensorRT engine from the ONNX")
    g.add_argument("--min-hw", type=parse_hw, default=P.min_hw, metavar="HxW",
                   help="smallest input the engine takes; smaller ones are padded (default 16x16)")
    g.add_argument("--opt-hw", type=parse_hw, default=P.opt_hw, metavar="HxW",
                   help="input size its kernels are tuned for (default 512x512)")
    g.add_argument("--max-hw", type=parse_hw, default=P.max_hw, metavar="HxW",
                   help="largest input: tile + margins must fit (default 1024x1024)")
    g.add_argument("--min-batch", type=int, default=P.min_batch, help="tiles per call (default %(default)s)")
    g.add_argument("--opt-batch", type=int, default=P.opt_batch, help="(default %(default)s)")
    g.add_argument("--max-batch", type=int, default=P.max_batch, help="(default %(default)s)")
    g.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit (default %(default)s)")
    g.add_argument("--compute-capabilities", type=lambda s: s.split(","), metavar="SM86,SM89",
                   help="TensorRT-RTX: GPU targets (default: its own default list)")
    e.set_defaults(func=run)
    return e


def run(args: argparse.Namespace) -> int:
    from denoiser.core.metadata import ExportSidecar, sidecar_path
    from denoiser.deploy.export import export_checkpoint

    if args.engine and args.precision == "int8" and args.target == "cpu":
        raise ValueError("--target cpu makes uint8 activations with zero points, which TensorRT refuses: "
                         "use --target tensorrt for an engine")
    model = Path(args.model)
    default = model.with_suffix(".onnx") if args.precision == "fp32" else model.with_name(
        f"{model.stem}-{args.precision}{'-cpu' if args.precision == 'int8' and args.target == 'cpu' else ''}.onnx")
    out = Path(args.output or default)
    cfg = ExportConfig(opset=args.opset, precision=args.precision, int8_target=args.target, check_dir=args.check_dir,
                       check_sigma=args.check_sigma, calib_dir=args.calib, calib_crops=args.calib_crops,
                       calib_method=args.calib_method, keep_float=tuple(args.keep_float),
                       calib_noise=args.calib_noise,
                       int8_weight_bits=args.weight_bits,
                       auto_mixed=not args.no_auto_mixed)
    side = export_checkpoint(model, out, cfg, from_fp32=args.from_fp32)
    s = ExportSidecar.from_dict(side, sidecar_path(out))
    q, check = s.quality, s.check
    print(f"wrote {out} ({s.precision}; max abs diff to PyTorch at {check.size}: "
          f"{check.max_abs_diff:.1e}); on {q.images} at sigma {q.sigma:g}: PSNR {q.psnr:.3f} dB "
          f"(FP32 {q.psnr_fp32:.3f}, loss {q.loss_db:.3f} dB, budget {q.budget_db}), "
          f"{q.psnr_vs_fp32:.1f} dB against FP32")
    if s.float_layers:
        print(f"layers kept out of {s.precision}, in {s.float_precision}: {', '.join(s.float_layers)}")
    if args.engine:
        from denoiser.deploy.tensorrt import build_engine

        profile = EngineProfile(min_batch=args.min_batch, opt_batch=args.opt_batch, max_batch=args.max_batch,
                                min_hw=args.min_hw, opt_hw=args.opt_hw, max_hw=args.max_hw)
        info = build_engine(out, args.engine, profile, args.workspace_mb, args.compute_capabilities)
        print(f"wrote {args.engine} ({info['flavour']} {info['tensorrt_version']}, {info['precision']}, "
              f"targets: {', '.join(info['compute_capabilities'] or []) or 'default'})")
    return 0
