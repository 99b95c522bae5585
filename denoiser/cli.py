"""The `denoiser` command. Each subcommand parses flags, builds a config, calls one function.

Flag defaults are read from the config dataclasses, so defaults live in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DataConfig, ExportConfig, ModelConfig, NoiseConfig, RunConfig, TrainConfig

EXAMPLES = """examples:
  denoiser denoise photos/ -o clean/                 denoise a folder with the default model
  denoiser denoise scan.tif --strength 0.7 -o out/   keep some grain
  denoiser train --clean my_photos/ --steps 5000 --run runs/mine
  denoiser train --pairs noisy/ clean/ --init checkpoints/default-color.safetensors
  denoiser export runs/mine/model.safetensors -o mine.onnx
  denoiser eval --model mine.onnx --clean testset/ --sigma 25
"""


def _denoise(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, denoise_files
    from .inference import Denoiser

    dn = Denoiser.load(args.model, backend=args.backend, device=args.device, tile=args.tile, threads=args.threads)
    print(f"model: {dn.describe()}", file=sys.stderr)
    opts = BatchOptions(recursive=args.recursive, suffix=args.suffix, format=args.format, quality=args.quality,
                        strength=args.strength, skip_existing=args.skip_existing, overwrite=args.overwrite,
                        max_pixels=args.max_pixels)

    def progress(i: int, n: int, r) -> None:
        status = "ok" if r.status == "ok" else f"{r.status}: {r.reason}"
        print(f"[{i}/{n}] {r.input} -> {r.output or '-'} ({status})", file=sys.stderr)

    report = denoise_files(dn, args.inputs, args.output, opts, progress)
    print(report.summary(), file=sys.stderr)
    if args.report:
        report.to_json(args.report)
    if not report.results:
        print("no images found in the given inputs", file=sys.stderr)
        return 1
    return 1 if report.failed else 0


def _train(args: argparse.Namespace) -> int:
    from .noise import parse_noise_spec
    from .train import train

    if args.channels not in (1, 3):
        raise ValueError("--channels must be 1 (gray) or 3 (colour)")
    noise = parse_noise_spec(args.noise, args.quantize_prob)
    data = DataConfig(clean_dirs=tuple(args.clean), procedural=not args.no_procedural or not args.clean,
                      procedural_weight=args.procedural_weight, pairs=tuple(args.pairs) if args.pairs else None,
                      channels=args.channels, crop=args.crop, batch_size=args.batch_size,
                      num_workers=args.workers, val_count=args.val_count)
    model = ModelConfig(channels=args.channels, width=args.width, levels=args.levels)
    tr = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.warmup, seed=args.seed, device=args.device,
                     val_interval=args.val_interval, snapshot_interval=args.snapshot_interval,
                     log_interval=args.log_interval, threads=args.threads)
    final = train(RunConfig(noise, data, model, tr), args.run, resume=args.resume, init=args.init)
    print(f"final model: {final}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_checkpoint

    out = Path(args.output or Path(args.model).with_suffix(".onnx"))
    side = export_checkpoint(args.model, out, ExportConfig(opset=args.opset))
    print(f"wrote {out} (checked against PyTorch at {side['check']['size']}: "
          f"max abs diff {side['check']['max_abs_diff']:.1e})")
    if args.engine:
        from .tensorrt import build_engine

        info = build_engine(out, args.engine)
        print(f"wrote {args.engine} ({info.get('flavour')} {info.get('version')})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .inference import Denoiser

    dn = Denoiser.load(args.model, backend=args.backend, threads=args.threads)
    result = evaluate(dn, args.clean, args.sigma, seed=args.seed, limit=args.limit)
    if not args.per_image:
        result.pop("per_image")
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="denoiser", description="Denoise images; train, export and evaluate denoisers.",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("denoise", help="denoise image files and folders", description=(
        "Denoise files, folders and globs into OUTDIR, each output under its input's file name. "
        "Inputs are never overwritten; outputs are written atomically; bad files are reported and "
        "skipped; the exit code is 0 only if every file succeeded."))
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    d.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    d.add_argument("--model", default=None, help="checkpoint (.safetensors), .onnx or .engine; default: the shipped model")
    d.add_argument("--strength", type=float, default=1.0, help="0 keeps the input, 1 is the full denoise (default 1)")
    d.add_argument("--recursive", "-r", action="store_true", help="walk folders recursively, mirroring the tree")
    d.add_argument("--suffix", default="", help="append to output names, e.g. _denoised")
    d.add_argument("--format", choices=["png", "jpg", "tif", "webp", "bmp"], help="output format (default: the input's)")
    d.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95; 100 = lossless WebP)")
    d.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists")
    d.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    d.add_argument("--max-pixels", type=int, default=200_000_000, help="refuse larger images (decompression bombs)")
    d.add_argument("--report", metavar="JSON", help="write a per-file report")
    _add_runtime(d)
    d.set_defaults(func=_denoise)

    t = sub.add_parser("train", help="train a denoiser", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train on synthetic pairs (clean folders and/or procedural images + a noise "
                                   "spec) or on paired noisy/clean folders. Writes a run folder with config.json, "
                                   "metrics.jsonl and checkpoints.")
    g = t.add_argument_group("data")
    g.add_argument("--clean", nargs="*", default=[], metavar="DIR", help="folders of clean images")
    g.add_argument("--pairs", nargs=2, metavar=("NOISY_DIR", "CLEAN_DIR"), help="paired folders matched by file name")
    g.add_argument("--no-procedural", action="store_true", help="do not mix in procedural dead-leaves images")
    g.add_argument("--procedural-weight", type=float, default=DataConfig.procedural_weight)
    g.add_argument("--noise", default=f"gaussian:{NoiseConfig.sigma_min:g}-{NoiseConfig.sigma_max:g}",
                   help="noise spec: gaussian:S or gaussian:LO-HI (sigma on the 0-255 scale)")
    g.add_argument("--quantize-prob", type=float, default=NoiseConfig.quantize_prob,
                   help="share of noisy inputs clipped and rounded to 8 bits")
    g.add_argument("--channels", type=int, default=DataConfig.channels, help="1 = gray, 3 = colour")
    g.add_argument("--crop", type=int, default=DataConfig.crop)
    g.add_argument("--batch-size", type=int, default=DataConfig.batch_size)
    g.add_argument("--workers", type=int, default=DataConfig.num_workers, help="data loader processes")
    g.add_argument("--val-count", type=int, default=DataConfig.val_count, help="fixed validation crops")
    g = t.add_argument_group("model")
    g.add_argument("--width", type=int, default=ModelConfig.width, help="channels at full resolution")
    g.add_argument("--levels", type=int, default=ModelConfig.levels, help="U-Net depth (alignment = 2**levels)")
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune from this model (keeps its architecture)")
    g = t.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=TrainConfig.steps)
    g.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak learning rate (warm-up, then cosine)")
    g.add_argument("--warmup", type=int, default=TrainConfig.warmup_steps)
    g.add_argument("--seed", type=int, default=TrainConfig.seed)
    g = t.add_argument_group("run")
    g.add_argument("--run", default="runs/latest", help="run folder")
    g.add_argument("--resume", action="store_true", help="continue the run folder's last snapshot")
    g.add_argument("--device", default=TrainConfig.device, help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, default=TrainConfig.threads, help="CPU threads (0 = torch default)")
    g.add_argument("--log-interval", type=int, default=TrainConfig.log_interval)
    g.add_argument("--val-interval", type=int, default=TrainConfig.val_interval)
    g.add_argument("--snapshot-interval", type=int, default=TrainConfig.snapshot_interval)
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a checkpoint to ONNX (and optionally a TensorRT engine)")
    e.add_argument("model", help="checkpoint (.safetensors)")
    e.add_argument("-o", "--output", help="output .onnx (default: beside the checkpoint)")
    e.add_argument("--opset", type=int, default=ExportConfig.opset)
    e.add_argument("--engine", metavar="OUT.engine", help="also build a TensorRT engine from the ONNX")
    e.set_defaults(func=_export)

    v = sub.add_parser("eval", help="PSNR/SSIM on a folder of clean images (DESIGN.md protocol), as JSON")
    v.add_argument("--model", default=None, help="default: the shipped model")
    v.add_argument("--clean", required=True, metavar="DIR", help="folder of clean images")
    v.add_argument("--sigma", type=float, default=25.0, help="Gaussian sigma on the 0-255 scale")
    v.add_argument("--seed", type=int, default=0, help="noise seed of the first image (then +1 per image)")
    v.add_argument("--limit", type=int, help="only the first N images")
    v.add_argument("--per-image", action="store_true", help="include per-image scores")
    _add_runtime(v, device=False, tile=False)
    v.set_defaults(func=_eval)
    return ap


def _add_runtime(p: argparse.ArgumentParser, device: bool = True, tile: bool = True) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                   help="auto: TensorRT engine > PyTorch CUDA > ONNX Runtime CPU > PyTorch CPU")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    if device:
        p.add_argument("--device", default=None, help="torch device for checkpoints (cpu, cuda)")
    if tile:
        p.add_argument("--tile", type=int, default=512, help="tile size in pixels (bounded memory)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"denoiser {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
