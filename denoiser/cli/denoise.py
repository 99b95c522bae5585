"""`denoiser denoise`: image files and folders in, denoised files out (run.batch does the work)."""

from __future__ import annotations

import argparse
import sys

from denoiser.cli.options import add_runtime
from denoiser.core.imageio import EXTENSION_BY_FORMAT

OUTPUT_FORMATS = [ext.lstrip(".") for ext in EXTENSION_BY_FORMAT.values()]  # --format


def add_parser(sub) -> argparse.ArgumentParser:
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
    d.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: the input's)")
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
    add_runtime(d, jpeg_alias=True)
    d.set_defaults(func=run, tile=None)
    return d


def run(args: argparse.Namespace) -> int:
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
