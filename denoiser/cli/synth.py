"""`denoiser synth`: write the noisy/clean pairs a noise spec makes (train.synth), to look at or reuse."""

from __future__ import annotations

import argparse
import sys

from denoiser.cli.options import DefaultsAndRawEpilog
from denoiser.core.config import CHANNELS, DataConfig, NoiseConfig, SynthConfig


def add_parser(sub) -> argparse.ArgumentParser:
    from denoiser.core.noise.spec import (
        noise_help,  # pure Python: --help stays fast (no torch)
    )

    s = sub.add_parser("synth", help="write the noisy/clean pairs a noise spec makes, to look at or reuse",
                       formatter_class=DefaultsAndRawEpilog, epilog=noise_help(), description=(
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
    s.add_argument("--channels", type=int, choices=[0, *CHANNELS], default=SynthConfig.channels,
                   help="1 = gray, 3 = colour, 0 = each file's own (whole images) or %d (crops)" % DataConfig.channels)
    g = s.add_argument_group("training options that decide the crops and noise (with --crop)")
    g.add_argument("--clean-weights", nargs="*", type=float, default=list(DataConfig.clean_weights), metavar="W",
                   help="one share per --clean folder (default: every image equally likely)")
    g.add_argument("--no-procedural", action="store_true", help="no procedural dead-leaves crops")
    g.add_argument("--procedural-weight", type=float, default=DataConfig.procedural_weight)
    g.add_argument("--batch-size", type=int, default=DataConfig.batch_size)
    g.add_argument("--quantize-prob", type=float, default=NoiseConfig.quantize_prob,
                   help="as in training: it draws from the noise generator")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
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
