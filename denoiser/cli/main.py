"""The `denoiser` command. Each subcommand, a module of its own here, declares its flags
(`add_parser`) and runs them (`run`): parse flags, build a config, call one function.

Flag defaults are read from the config dataclasses, and choices from the declarations they
belong to (core.config, run.inference, run.quality, ...), so each lives in one place.
"""

from __future__ import annotations

import argparse
import sys

# each by its own name: `from denoiser.cli import ...` would go through the package, which imports this
import denoiser.cli.bench as bench
import denoiser.cli.denoise as denoise
import denoiser.cli.estimate_noise as estimate_noise
import denoiser.cli.evaluate as evaluate
import denoiser.cli.export as export
import denoiser.cli.synth as synth
import denoiser.cli.train as train

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

SUBCOMMANDS = (denoise, train, export, evaluate, bench, synth, estimate_noise)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="denoiser", description="Denoise images; train, export and evaluate denoisers.",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":  # what --resume is asked to change
        args.given = train.given_flags(build_parser(), sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"denoiser {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
