"""Noise specs: the short strings that name a noise model, parsed into frozen dataclasses.

Grammar (spaces and case are ignored):

    spec    = chain ("|" chain)*        a mixture: each sample gets one chain
    chain   = op ("+" op)* ["@" WEIGHT]  applied left to right; WEIGHT (default 1) sets its share
    op      = KIND [":" args] | PRESET   e.g. gaussian:5-50, jpeg:quality=30-90, camera
    args    = arg ("," arg)*             positional in the kind's parameter order, or NAME=RANGE
    RANGE   = V | LO-HI                  each sample draws uniformly from [LO, HI]

Parameters left out take their ranges from config.NOISE_DEFAULTS; presets (config.NOISE_PRESETS)
stand for whole chains. `format_spec` writes the canonical form, with presets expanded and
every parameter spelled out, so a spec stored in a checkpoint says exactly what was trained on
and parses back to the same model. This module is pure Python (no torch), so the CLI can build
its --help without importing torch; noise.py turns these dataclasses into torch ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import ClassVar

from denoiser.core.config import NOISE_DEFAULTS, NOISE_PRESETS, NoiseConfig

Range = tuple[float, float]


@dataclass(frozen=True)
class Gaussian:
    name: ClassVar[str] = "gaussian"
    sigma: Range  # 0-255 scale

    def check(self) -> None:
        _check(self, "sigma", 0, 255)


@dataclass(frozen=True)
class PoissonGaussian:
    """Variance (0-255 scale) = shot**2 / 255 * intensity + read**2: linear in intensity."""

    name: ClassVar[str] = "poisson-gaussian"
    shot: Range  # sigma of the shot noise at full white
    read: Range  # sigma of the signal-independent read noise

    def check(self) -> None:
        _check(self, "shot", 0, 255)
        _check(self, "read", 0, 255)


@dataclass(frozen=True)
class Correlated:
    name: ClassVar[str] = "correlated"
    sigma: Range  # per-pixel sigma after correlation
    scale: Range  # std in pixels of the Gaussian blur that correlates neighbours

    def check(self) -> None:
        _check(self, "sigma", 0, 255)
        _check(self, "scale", 0, 8)  # the kernel (radius 3 * scale) stays small


@dataclass(frozen=True)
class Speckle:
    name: ClassVar[str] = "speckle"
    sigma: Range  # multiplicative: sigma at full white, proportionally less in the dark

    def check(self) -> None:
        _check(self, "sigma", 0, 255)


@dataclass(frozen=True)
class SaltPepper:
    name: ClassVar[str] = "salt-pepper"
    amount: Range  # share of pixels set to black or white

    def check(self) -> None:
        _check(self, "amount", 0, 1)


@dataclass(frozen=True)
class Jpeg:
    name: ClassVar[str] = "jpeg"
    quality: Range  # encoder quality, whole numbers 1-100

    def check(self) -> None:
        _check(self, "quality", 1, 100)
        if any(q != int(q) for q in self.quality):
            raise ValueError(f"jpeg quality must be whole numbers, got {_format_range(self.quality)}")


@dataclass(frozen=True)
class Camera:
    """A camera's pipeline (camera_noise.py): raw shot + read noise, demosaicing, processing, JPEG."""

    name: ClassVar[str] = "camera"
    iso: Range  # sets the raw shot noise (read noise follows it); drawn log-uniformly
    sharpen: Range  # unsharp-mask amount (0: none)
    blur: Range  # in-camera smoothing, Gaussian std in pixels (0: none)
    chroma: Range  # chroma noise reduction, Gaussian std in pixels on Cb/Cr (0: none)
    zoom: Range  # image pixels per sensor pixel (>1: upscaled, blotchier); drawn log-uniformly, once per batch
    quality: Range  # the camera's JPEG quality, 4:2:0

    def check(self) -> None:
        _check(self, "iso", 25, 102400)
        _check(self, "sharpen", 0, 3)
        _check(self, "blur", 0, 3)
        _check(self, "chroma", 0, 8)
        _check(self, "zoom", 0.25, 4)
        Jpeg(self.quality).check()


Op = Gaussian | PoissonGaussian | Correlated | Speckle | SaltPepper | Jpeg | Camera
OPS: dict[str, type] = {cls.name: cls for cls in (Gaussian, PoissonGaussian, Correlated, Speckle, SaltPepper, Jpeg,
                                                 Camera)}


@dataclass(frozen=True)
class NoiseModel:
    """A mixture of chains: sample i gets chains[k] with probability weights[k] / sum(weights)."""

    chains: tuple[tuple[Op, ...], ...]
    weights: tuple[float, ...]


_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"  # no sign, no exponent: '-' separates a range
_RANGE = re.compile(rf"^({_NUMBER})(?:-({_NUMBER}))?$")


@lru_cache(maxsize=64)
def parse_spec(spec: str) -> NoiseModel:
    """Parse and check a spec; ValueError with the offending part otherwise."""
    text = re.sub(r"\s+", "", spec).lower()
    if not text:
        raise ValueError(f"empty noise spec; known kinds: {', '.join(NOISE_KINDS)}")
    chains, weights = [], []
    for part in text.split("|"):
        body, at, weight_text = part.partition("@")
        weight = _number(weight_text, spec) if at else 1.0
        if weight <= 0:
            raise ValueError(f"bad noise spec {spec!r}: a chain's weight must be > 0")
        if not body:
            raise ValueError(f"bad noise spec {spec!r}: empty chain")
        ops: list[Op] = []
        for item in body.split("+"):
            kind, colon, args = item.partition(":")
            if kind in NOISE_PRESETS:
                if colon:
                    raise ValueError(f"bad noise spec {spec!r}: preset {kind!r} takes no arguments "
                                     f"(it stands for {NOISE_PRESETS[kind]})")
                ops.extend(_single_chain(parse_spec(NOISE_PRESETS[kind]), kind))
            else:
                ops.append(_parse_op(kind, args, spec))
        chains.append(tuple(ops))
        weights.append(weight)
    if len(set(weights)) == 1:
        weights = [1.0] * len(weights)  # equal shares: the canonical form leaves weights out
    return NoiseModel(tuple(chains), tuple(weights))


def format_spec(model: NoiseModel) -> str:
    """The canonical spec of a model: parse_spec(format_spec(m)) == m."""
    show_weights = len(set(model.weights)) > 1
    parts = []
    for chain, weight in zip(model.chains, model.weights):
        text = "+".join(_format_op(op) for op in chain)
        parts.append(f"{text}@{_format_number(weight)}" if show_weights else text)
    return "|".join(parts)


def parse_noise_spec(spec: str, quantize_prob: float = NoiseConfig.quantize_prob) -> NoiseConfig:
    """A NoiseConfig holding the canonical form of a CLI spec such as ``gaussian:5-50`` or ``camera``."""
    if not 0 <= quantize_prob <= 1:
        raise ValueError(f"quantize probability must be in [0, 1], got {quantize_prob}")
    return NoiseConfig(spec=format_spec(parse_spec(spec)), quantize_prob=quantize_prob)


def _single_chain(model: NoiseModel, name: str) -> tuple[Op, ...]:
    if len(model.chains) != 1:
        raise ValueError(f"preset {name!r} must be a single chain to be used inside a chain")
    return model.chains[0]


def _parse_op(kind: str, args: str, spec: str) -> Op:
    cls = OPS.get(kind)
    if cls is None:
        raise ValueError(f"unknown noise {kind!r} in {spec!r}; known: {', '.join(NOISE_KINDS)}")
    names = [f.name for f in fields(cls)]
    values = dict(NOISE_DEFAULTS[kind])
    given: set[str] = set()
    named = False
    for i, arg in enumerate(args.split(",") if args else []):
        if not arg:
            raise ValueError(f"bad noise spec {spec!r}: empty argument in {kind}:{args}")
        name, eq, value = arg.rpartition("=")
        if not eq:
            if named:
                raise ValueError(f"bad noise spec {spec!r}: positional argument after a named one")
            if i >= len(names):
                raise ValueError(f"bad noise spec {spec!r}: {kind} takes {len(names)} argument(s): {', '.join(names)}")
            name = names[i]
        elif name not in names:
            raise ValueError(f"bad noise spec {spec!r}: {kind} has no parameter {name!r} (it has {', '.join(names)})")
        else:
            named = True
        if name in given:
            raise ValueError(f"bad noise spec {spec!r}: {name} given twice")
        given.add(name)
        values[name] = _range(value, spec)
    op = cls(**values)
    op.check()
    return op


def _range(text: str, spec: str) -> Range:
    m = _RANGE.match(text)
    if not m:
        raise ValueError(f"bad noise spec {spec!r}: {text!r} is not a value or a LO-HI range")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else lo
    if lo > hi:
        raise ValueError(f"bad noise spec {spec!r}: range {text} runs backwards (need low <= high)")
    return (lo, hi)


def _number(text: str, spec: str) -> float:
    if not re.fullmatch(_NUMBER, text):
        raise ValueError(f"bad noise spec {spec!r}: {text!r} is not a number")
    return float(text)


def _check(op, name: str, lo: float, hi: float) -> None:
    r = getattr(op, name)
    if not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{op.name} {name} must lie in [{lo:g}, {hi:g}], got {_format_range(r)}")


def _format_number(v: float) -> str:
    text = repr(float(v))  # shortest round-tripping form; exponents would clash with '-'
    if "e" in text:
        text = f"{v:.20f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def _format_range(r: Range) -> str:
    return _format_number(r[0]) if r[0] == r[1] else f"{_format_number(r[0])}-{_format_number(r[1])}"


def _format_op(op: Op) -> str:
    params = fields(op)
    if len(params) == 1:  # one parameter: positional reads best (gaussian:5-50, jpeg:30-90)
        return f"{op.name}:{_format_range(getattr(op, params[0].name))}"
    return f"{op.name}:" + ",".join(f"{f.name}={_format_range(getattr(op, f.name))}" for f in params)


def _defaults_line(kind: str) -> str:
    return ",".join(f"{k}={_format_range(v)}" for k, v in NOISE_DEFAULTS[kind].items())


# name -> one help line; feeds --help of `denoiser train` and `denoiser synth`.
NOISE_KINDS: dict[str, str] = {
    "gaussian": f"gaussian[:SIGMA]  additive white Gaussian noise (default {_defaults_line('gaussian')})",
    "poisson-gaussian": ("poisson-gaussian[:shot=S,read=R]  sensor shot noise (variance grows linearly with "
                         f"intensity) plus read noise; sigmas at full white (default {_defaults_line('poisson-gaussian')})"),
    "correlated": ("correlated[:sigma=S,scale=PX]  spatially correlated Gaussian noise, as demosaicing leaves "
                   f"(default {_defaults_line('correlated')})"),
    "speckle": f"speckle[:SIGMA]  multiplicative noise, SIGMA at full white (default {_defaults_line('speckle')})",
    "salt-pepper": ("salt-pepper[:AMOUNT]  share of pixels set to black or white "
                    f"(default {_defaults_line('salt-pepper')})"),
    "jpeg": f"jpeg[:QUALITY]  JPEG compression artefacts (default {_defaults_line('jpeg')})",
    "camera": ("camera[:iso=I,sharpen=A,blur=PX,chroma=PX,zoom=Z,quality=Q]  a camera's pipeline: shot + read "
               "noise in raw at ISO I (log-uniform), demosaicing, white balance, colour matrix, tone curve, "
               "chroma smoothing, blur, sharpening, resizing, 4:2:0 JPEG "
               f"(default {_defaults_line('camera')})"),
    **{name: f"{name}  preset chain: {chain}" for name, chain in NOISE_PRESETS.items()},
}

NOISE_SYNTAX = ("Noise spec: KIND[:ARGS], chained with '+' (applied in order), mixed with '|' (one chain "
                "per sample, optional @WEIGHT); ARGS are ranges LO-HI or single values, sigmas on the 0-255 "
                "scale, e.g. gaussian:5-50, poisson-gaussian:shot=5-20,read=2, jpeg:30-90, "
                "gaussian:0-55|camera:iso=800-6400@0.5.")


def noise_help() -> str:
    """The syntax and one line per kind, for an argparse epilog."""
    import textwrap

    kinds = (textwrap.fill(line, 92, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
             for line in NOISE_KINDS.values())
    return textwrap.fill(NOISE_SYNTAX, 94) + "\nnoise kinds:\n" + "\n".join(kinds)
