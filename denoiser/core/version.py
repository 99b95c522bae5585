"""The code version that checkpoints and exports record (`denoiser.__version__` re-exports it)."""

__version__ = "0.1.0"
