"""What several `denoiser` subcommands share: the runtime flags (backend, quality, threads,
device, tile), argparse types for noise specs and quality modes, and a help formatter.

Everything here stays light to import: building the parser must not import torch (`--help`).
"""

from __future__ import annotations

import argparse

from denoiser.deploy.backends import BACKEND_CHOICES
from denoiser.run.quality import MODE_HELP, QUALITIES


class DefaultsAndRawEpilog(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults; text with line breaks of its own (the noise-kinds epilog) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def noise_spec(text: str) -> str:
    """argparse type: a noise spec in canonical form, so a typo fails before any work starts."""
    from denoiser.core.noise.spec import format_spec, parse_spec

    try:
        return format_spec(parse_spec(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def quality_mode(text: str) -> str:
    if text not in QUALITIES:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(QUALITIES)}")
    return text


def quality_or_jpeg(text: str) -> str | int:
    """denoise --quality: a mode, or (as before the modes) a number, the JPEG/WebP quality."""
    return int(text) if text.isdigit() else quality_mode(text)


def add_runtime(p: argparse.ArgumentParser, device: bool = True, tile: bool = True, jpeg_alias: bool = False) -> None:
    p.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                   help="auto: TensorRT engine > PyTorch CUDA > ONNX Runtime CPU > PyTorch CPU")
    modes = "; ".join(f"{k}: {v}" for k, v in MODE_HELP.items())
    p.add_argument("--quality", type=quality_or_jpeg if jpeg_alias else quality_mode, default=None,
                   metavar="{" + ",".join(QUALITIES) + "}",
                   help=f"speed against quality, as Open Image Denoise names them. {modes}. Default: on a CPU "
                        "a checkpoint runs INT8 where its export's check passed (at most 0.1 dB below FP32), "
                        "else FP32; elsewhere FP32" + (". A number here is the JPEG quality (--jpeg-quality), as "
                                                       "in earlier versions" if jpeg_alias else ""))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    if device:
        p.add_argument("--device", default=None, help="torch device for checkpoints (cpu, cuda)")
    if tile:
        p.add_argument("--tile", type=int, default=512, help="tile size in pixels (bounded memory)")
