"""Noise specs: the short strings that name a noise model, parsed by the kinds' declarations (kinds.py).

Grammar (spaces and case are ignored):

    spec    = chain ("|" chain)*        a mixture: each sample gets one chain
    chain   = op ("+" op)* ["@" WEIGHT]  applied left to right; WEIGHT (default 1) sets its share
    op      = KIND [":" args] | PRESET   e.g. gaussian:5-50, jpeg:quality=30-90, camera
    args    = arg ("," arg)*             positional in the kind's parameter order, or NAME=RANGE
    RANGE   = V | LO-HI                  each sample draws uniformly from [LO, HI]

Parameters left out take their kind's default ranges and every range is checked against its
kind's bounds (kinds.KINDS); presets (config.NOISE_PRESETS) stand for whole chains.
`format_spec` writes the canonical form, with presets expanded and every parameter spelled out,
so a spec stored in a checkpoint says exactly what was trained on and parses back to the same
model. This module is pure Python (no torch), so the CLI can build its --help without importing
torch; ops.py runs the parsed ops as torch ops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from denoiser.core.config import NOISE_PRESETS, NoiseConfig
from denoiser.core.noise.kinds import KINDS, NoiseKind, Param, Range


@dataclass(frozen=True)
class Op:
    """One parsed op: a kind and a range for each of its parameters, readable as `op.NAME`."""

    kind: str
    params: tuple[tuple[str, Range], ...]  # in the kind's parameter order

    def __getattr__(self, name: str) -> Range:
        # Called only for names that are not fields. It reads __dict__, never self.kind or
        # self.params, so that a copy under construction (pickle, copy) cannot recurse here.
        for key, value in self.__dict__.get("params", ()):
            if key == name:
                return value
        raise AttributeError(f"{self.__dict__.get('kind')!r} noise has no parameter {name!r}")


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


def _parse_op(name: str, args: str, spec: str) -> Op:
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown noise {name!r} in {spec!r}; known: {', '.join(NOISE_KINDS)}")
    names = [p.name for p in kind.params]
    values = {p.name: p.default for p in kind.params}
    given: set[str] = set()
    named = False
    for i, arg in enumerate(args.split(",") if args else []):
        if not arg:
            raise ValueError(f"bad noise spec {spec!r}: empty argument in {name}:{args}")
        param, eq, value = arg.rpartition("=")
        if not eq:
            if named:
                raise ValueError(f"bad noise spec {spec!r}: positional argument after a named one")
            if i >= len(names):
                raise ValueError(f"bad noise spec {spec!r}: {name} takes {len(names)} argument(s): {', '.join(names)}")
            param = names[i]
        elif param not in names:
            raise ValueError(f"bad noise spec {spec!r}: {name} has no parameter {param!r} (it has {', '.join(names)})")
        else:
            named = True
        if param in given:
            raise ValueError(f"bad noise spec {spec!r}: {param} given twice")
        given.add(param)
        values[param] = _range(value, spec)
    for p in kind.params:
        _check(name, p, values[p.name])
    return Op(name, tuple((p.name, values[p.name]) for p in kind.params))


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


def _check(kind: str, param: Param, r: Range) -> None:
    lo, hi = param.bounds
    if not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{kind} {param.name} must lie in [{lo:g}, {hi:g}], got {_format_range(r)}")
    if param.whole and any(v != int(v) for v in r):
        raise ValueError(f"{kind} {param.name} must be whole numbers, got {_format_range(r)}")


def _format_number(v: float) -> str:
    text = repr(float(v))  # shortest round-tripping form; exponents would clash with '-'
    if "e" in text:
        text = f"{v:.20f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def _format_range(r: Range) -> str:
    return _format_number(r[0]) if r[0] == r[1] else f"{_format_number(r[0])}-{_format_number(r[1])}"


def _format_op(op: Op) -> str:
    if len(op.params) == 1:  # one parameter: positional reads best (gaussian:5-50, jpeg:30-90)
        return f"{op.kind}:{_format_range(op.params[0][1])}"
    return f"{op.kind}:" + ",".join(f"{name}={_format_range(r)}" for name, r in op.params)


def help_line(kind: NoiseKind) -> str:
    """`usage  what it makes (default ranges)`, e.g. gaussian[:SIGMA]  additive white ... (default sigma=0-55)."""
    if len(kind.params) == 1:
        usage = f"{kind.name}[:{kind.params[0].metavar}]"
    else:
        usage = f"{kind.name}[:" + ",".join(f"{p.name}={p.metavar}" for p in kind.params) + "]"
    defaults = ",".join(f"{p.name}={_format_range(p.default)}" for p in kind.params)
    return f"{usage}  {kind.help} (default {defaults})"


class _HelpLines(Mapping[str, str]):
    """Name -> help line of every kind, then every preset, read from KINDS and NOISE_PRESETS on each
    use, so that a kind declared there is listed wherever this is (CLI help, the app's lists)."""

    def __getitem__(self, name: str) -> str:
        if name in KINDS:
            return help_line(KINDS[name])
        return f"{name}  preset chain: {NOISE_PRESETS[name]}"

    def __iter__(self) -> Iterator[str]:
        return iter([*KINDS, *NOISE_PRESETS])

    def __len__(self) -> int:
        return len(KINDS) + len(NOISE_PRESETS)


NOISE_KINDS: Mapping[str, str] = _HelpLines()

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
