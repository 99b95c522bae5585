"""denoiser: train, export and run a U-Net image denoiser.

`import denoiser` stays light: torch is imported by the modules that need it, and the heavy
optional packages (onnxruntime, tensorrt, gradio) only inside the functions that use them.
"""

from denoiser.core.version import __version__

__all__ = ["Denoiser", "__version__"]


def __getattr__(name: str):
    if name == "Denoiser":
        from denoiser.run.inference import Denoiser

        return Denoiser
    raise AttributeError(name)
