"""The noise kinds, each declared once: its parameters (default range, bounds, meaning), its help
line and its torch op.

Everything else is derived from `KINDS`: the spec parser and its checks (spec.py), the CLI's
noise help and the app's list of kinds (spec.noise_help, spec.NOISE_KINDS) and the ops table
(ops.op_function). Adding a kind is one torch function plus one entry here.

This module is pure Python (no torch) so that parsing a spec and printing --help stay light: an
op is named as "module:function" and imported on first use. The function takes the clean or
partly noised (B, C, H, W) batch in [0, 1], the parsed op (its ranges read as `op.NAME`) and the
caller's torch.Generator, draws its parameters per sample from those ranges with that generator,
and returns the batch unclipped.

Ranges are on the 0-255 scale for sigmas. Named chains of kinds (presets such as "camera-v1")
are config.NOISE_PRESETS.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float, float]


@dataclass(frozen=True)
class Param:
    name: str
    metavar: str  # how the help line spells its value: gaussian[:SIGMA]
    default: Range  # drawn from when a spec leaves the parameter out
    bounds: Range  # what a spec may ask for
    meaning: str  # what it does, for readers of this table and of the docs
    whole: bool = False  # whole numbers only (a JPEG quality)


@dataclass(frozen=True)
class NoiseKind:
    name: str
    params: tuple[Param, ...]  # in the order positional arguments fill them
    help: str  # what it makes; the help line adds the usage and the defaults
    op: str  # "module:function", see the module docstring

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        # A parsed op answers op.NAME for each parameter beside its own fields `kind` and `params`.
        if len(set(names)) != len(names) or {"kind", "params"} & set(names):
            raise ValueError(f"noise kind {self.name!r}: parameter names must be distinct and not "
                             f"'kind' or 'params', got {names}")

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


_OPS = "denoiser.core.noise.ops"

KINDS: dict[str, NoiseKind] = {k.name: k for k in (
    NoiseKind("gaussian", (
        Param("sigma", "SIGMA", (0.0, 55.0), (0, 255), "standard deviation"),
    ), "additive white Gaussian noise", f"{_OPS}:gaussian"),
    NoiseKind("poisson-gaussian", (
        # Photon counts at white: 255**2 / shot**2. Variance = shot**2 / 255 * intensity + read**2.
        Param("shot", "S", (2.0, 30.0), (0, 255), "sigma of the shot noise at full white"),
        Param("read", "R", (0.0, 10.0), (0, 255), "sigma of the signal-independent read noise"),
    ), "sensor shot noise (variance grows linearly with intensity) plus read noise; sigmas at full white",
        f"{_OPS}:poisson_gaussian"),
    NoiseKind("correlated", (
        Param("sigma", "S", (2.0, 25.0), (0, 255), "per-pixel sigma after correlation"),
        # The blur kernel reaches 3 * scale pixels: the bound keeps it small.
        Param("scale", "PX", (0.5, 1.5), (0, 8), "std in pixels of the Gaussian blur that correlates neighbours"),
    ), "spatially correlated Gaussian noise, as demosaicing leaves", f"{_OPS}:correlated"),
    NoiseKind("speckle", (
        Param("sigma", "SIGMA", (5.0, 50.0), (0, 255), "sigma at full white, proportionally less in the dark"),
    ), "multiplicative noise, SIGMA at full white", f"{_OPS}:speckle"),
    NoiseKind("salt-pepper", (
        Param("amount", "AMOUNT", (0.001, 0.05), (0, 1), "share of pixels set to black or white"),
    ), "share of pixels set to black or white", f"{_OPS}:salt_pepper"),
    NoiseKind("jpeg", (
        Param("quality", "QUALITY", (30.0, 95.0), (1, 100), "encoder quality", whole=True),
    ), "JPEG compression artefacts", f"{_OPS}:jpeg"),
    # camera.py. ISO 100-12000 is Brooks et al.'s shot-noise range (1e-4 to 0.012); up to 25600
    # for small phone sensors in low light. Every camera smooths a little and sharpens.
    NoiseKind("camera", (
        Param("iso", "I", (100.0, 25600.0), (25, 102400),
              "sets the raw shot noise (read noise follows it); drawn log-uniformly"),
        Param("sharpen", "A", (0.0, 0.5), (0, 3), "unsharp-mask amount (0: none)"),
        Param("blur", "PX", (0.3, 1.0), (0, 3), "in-camera smoothing, Gaussian std in pixels (0: none)"),
        Param("chroma", "PX", (0.0, 3.0), (0, 8), "chroma noise reduction, Gaussian std in pixels on Cb/Cr (0: none)"),
        Param("zoom", "Z", (0.8, 1.6), (0.25, 4),
              "image pixels per sensor pixel (>1: upscaled, blotchier); drawn log-uniformly, once per batch"),
        Param("quality", "Q", (75.0, 98.0), (1, 100), "the camera's JPEG quality, 4:2:0", whole=True),
    ), "a camera's pipeline: shot + read noise in raw at ISO I (log-uniform), demosaicing, white balance, "
       "colour matrix, tone curve, chroma smoothing, blur, sharpening, resizing, 4:2:0 JPEG",
        "denoiser.core.noise.camera:camera_jpeg"),
)}
