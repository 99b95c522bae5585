"""The `denoiser` command, on top of everything else."""

from denoiser.cli.main import main

__all__ = ["main"]
