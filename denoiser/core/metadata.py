"""Typed views of the metadata our files carry, read and written in one place.

Three kinds of file describe themselves in JSON:
  CheckpointMeta   the "denoiser" header of a .safetensors checkpoint (core/checkpoint.py);
  ExportMeta       the "denoiser" property of an exported .onnx file, and ExportSidecar, the
                   `OUT.onnx.json` beside it (the same fields plus what its checks measured);
  EngineSidecar    the `OUT.engine.json` beside a TensorRT engine (deploy/tensorrt.py).

Each is a frozen dataclass with `from_dict(data, where)` and `to_dict()`. The file formats
do not change: `to_dict` gives back exactly the JSON that was read (same keys, same order,
same values; ints stay ints), so a file read and written again is byte for byte the same.
For that a record remembers the keys it was read with, in their order (`keys`), and keeps
every key it has no field for (`extra`): older and newer writers added fields over time
(`packed_from`, `revived`, `reach`...), and a re-save must not drop them. Fields that older
files lack are optional (None) and then stay absent in `to_dict`; a missing required field
or a field of the wrong type raises MetadataError naming the file (`where`) and the field.

Types are checked one level deep (a list is a list; its items are not inspected), and nested
free-form parts (the training config, metrics, check numbers) stay plain dicts. Nothing here
imports torch or onnx: the CLI reads sidecars before deciding to load either.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from denoiser.core.atomic import sidecar_path
from denoiser.core.config import EngineProfile, ModelConfig, from_dict

CHECKPOINT_FORMAT = "denoiser-checkpoint-v1"
ENGINE_FORMAT = "denoiser-engine-v1"
R = TypeVar("R", bound="Record")


class MetadataError(ValueError):
    """A metadata field is missing or of the wrong type; the message names the file and the field.

    The wording ("damaged denoiser metadata (KeyError: 'alignment')" for a missing field) is
    what the readers said before these records existed; tests and users match on it.
    """


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of the records: typed fields (declared by subclasses) plus `keys` and `extra`."""

    keys: tuple[str, ...] = field(default=(), repr=False, compare=False)  # as read, in order
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # keys without a field, kept

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str | object = "metadata", prefix: str = "") -> R:
        if not isinstance(data, dict):
            raise MetadataError(f"{where}: damaged denoiser metadata (not a JSON object)")
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in _fields(cls):
            name = prefix + f.name
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise MetadataError(f"{where}: damaged denoiser metadata (KeyError: {name!r})")
                continue
            values[f.name] = _checked(data[f.name], hints[f.name], name, where)
        extra = {k: v for k, v in data.items() if k not in values}
        return cls(**values, keys=tuple(data), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: read keys in their order, then fields set since (None ones left out)."""
        names = {f.name for f in _fields(type(self))}
        out: dict[str, Any] = {}
        for k in self.keys:
            if k in names:
                out[k] = _dumped(getattr(self, k))
            elif k in self.extra:
                out[k] = self.extra[k]
        for f in _fields(type(self)):
            if f.name not in out and getattr(self, f.name) is not None:
                out[f.name] = _dumped(getattr(self, f.name))
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        return out


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in ("keys", "extra")]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dumped(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Record) else value


def _checked(value: Any, hint: Any, name: str, where: object) -> Any:
    """`value` if it is of type `hint` (a nested Record is parsed); else MetadataError."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    nested = isinstance(hint, type) and issubclass(hint, Record)
    base = dict if nested else typing.get_origin(hint) or hint
    wanted = (int, float) if base is float else (base,)  # JSON writes 2.0 as 2.0 but 2 as 2
    if base is Any or (isinstance(value, wanted) and not (isinstance(value, bool) and base in (int, float))):
        return hint.from_dict(value, where, prefix=name + ".") if nested else value
    shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
    raise MetadataError(f"{where}: damaged denoiser metadata (TypeError: {name!r} should be "
                        f"{getattr(base, '__name__', base)}, is {type(value).__name__} {shown})")


def _model_config(raw: dict | None, where: object) -> ModelConfig:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: the metadata holds no model config")
    try:
        return from_dict(ModelConfig, raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad model config in the metadata ({e})") from None


# ---- checkpoints -------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class CheckpointMeta(Record):
    """The header of a checkpoint. `save_checkpoint` writes format, code_version and model;
    the trainer adds the rest (a final model: run ... world_size; a snapshot: step, elapsed_s,
    pixels_seen and param_groups); converters and packers add their own keys (kept in `extra`)."""

    format: str
    code_version: str | None = None
    model: dict | None = None  # a ModelConfig as written (older files lack later fields): model_config()
    run: dict | None = None  # the RunConfig the model was trained with
    parameters: int | None = None
    amp: str | None = None
    total_steps: int | None = None  # None (null) for a run on a time budget
    init: dict | None = None  # {"path", "metrics"} of the model it was fine-tuned from
    step: int | None = None
    elapsed_s: float | None = None  # training time on the run's clock
    pixels_seen: int | None = None
    wall_time_s: float | None = None
    metrics: dict | None = None
    device: str | None = None
    world_size: int | None = None
    param_groups: list | None = None  # optimizer settings of a snapshot
    packed_from: str | None = None
    converted_from: str | None = None

    def model_config(self, where: object = "checkpoint") -> ModelConfig:
        """The model config (`checkpoint.tensor_shapes` checks its sizes against the weights)."""
        return _model_config(self.model, where)

    def carried(self) -> dict[str, Any]:
        """What a re-save of these weights carries over: all but what `save_checkpoint` writes
        itself (format, code_version, model) and the optimizer's param_groups."""
        return {k: v for k, v in self.to_dict().items() if k not in ("format", "code_version", "model", "param_groups")}


# ---- ONNX exports and their sidecars -----------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ExportMeta(Record):
    """The "denoiser" metadata property of an exported ONNX file (deploy/export.py)."""

    model: dict
    alignment: int
    receptive_field: int
    activation_bytes_per_pixel: float | None = None  # exports older than it are U-Nets
    precision: str | None = None  # fp32 | fp16 | int8; older exports were fp32
    code_version: str | None = None
    int8_target: str | None = None
    int8_weight_bits: int | None = None
    float_layers: list | None = None  # mixed precision: the layers left in float
    float_precision: str | None = None

    def model_config(self, where: object = "export") -> ModelConfig:
        return _model_config(self.model, where)


@dataclass(frozen=True, kw_only=True)
class ModelMeta(Record):
    """What running a model needs from any of its files' metadata (a checkpoint's header or an
    export's), read alike: the model config and the export-only fields, where present."""

    model: dict
    activation_bytes_per_pixel: float | None = None
    int8_weight_bits: int | None = None

    def model_config(self, where: object = "model") -> ModelConfig:
        return _model_config(self.model, where)


@dataclass(frozen=True, kw_only=True)
class SourceRef(Record):
    """Where an export came from: the checkpoint's path and SHA-256 (and its metrics)."""

    checkpoint: str | None = None
    sha256: str | None = None
    metrics: dict | None = None


@dataclass(frozen=True, kw_only=True)
class CheckResult(Record):
    """ONNX Runtime against PyTorch at an odd size (export.check_against_torch)."""

    passed: bool
    max_abs_diff: float | None = None
    size: list | None = None
    batch: int | None = None
    tolerance: float | None = None


@dataclass(frozen=True, kw_only=True)
class QualityResult(Record):
    """PSNR on the held-out check images (export.check_quality)."""

    passed: bool
    loss_db: float | None = None
    budget_db: float | None = None
    images: str | None = None
    psnr: float | None = None
    psnr_fp32: float | None = None
    sigma: float | None = None
    psnr_vs_fp32: float | None = None


@dataclass(frozen=True, kw_only=True)
class ExportSidecar(ExportMeta):
    """`OUT.onnx.json`: the ONNX metadata plus the file's hash and what its checks measured."""

    file: str | None = None
    sha256: str | None = None
    opset: int | None = None
    ir_version: int | None = None
    dynamic_axes: list | None = None
    export_seconds: float | None = None
    check: CheckResult | None = None
    quality: QualityResult | None = None
    lowering: dict | None = None
    source: SourceRef | None = None
    reach: int | None = None  # the measured tile margin of a cached INT8 export (run/quality.py)

    @property
    def passed(self) -> bool:
        return self.check is not None and self.check.passed


# ---- TensorRT engines --------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class OnnxRef(Record):
    file: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class EngineSidecar(Record):
    """`OUT.engine.json`: how an engine was built (to check it fits this TensorRT and GPU, and to
    rebuild it), plus the model description copied from its ONNX sidecar."""

    format: str | None = None
    file: str | None = None
    bytes: int | None = None
    flavour: str | None = None  # tensorrt | tensorrt-rtx
    tensorrt_version: str | None = None
    precision: str | None = None  # the ONNX file's, "unknown" without its sidecar
    profile: dict | None = None  # an EngineProfile: engine_profile()
    channels: int | None = None
    workspace_mb: int | None = None
    compute_capabilities: list | None = None  # [] with TensorRT-RTX = its defaults; None = this GPU only
    onnx: OnnxRef | None = None
    build_seconds: float | None = None
    gpu: str | None = None
    # copied from the ONNX sidecar where it had them
    model: dict | None = None
    alignment: int | None = None
    receptive_field: int | None = None
    activation_bytes_per_pixel: float | None = None
    int8_target: str | None = None
    float_layers: list | None = None
    float_precision: str | None = None
    source: SourceRef | None = None

    def engine_profile(self) -> EngineProfile:
        return EngineProfile.from_dict(self.profile) if self.profile is not None else EngineProfile()


# ---- sidecar files -----------------------------------------------------------------------

def read_sidecar(artifact: str | Path, cls: type[R] = ExportSidecar) -> R:  # type: ignore[assignment]
    """The sidecar of `artifact` as a `cls` record: OSError if there is none, ValueError
    (naming the sidecar) if it is not JSON or its fields are missing or mistyped."""
    side = sidecar_path(artifact)
    text = side.read_text()
    try:
        data = json.loads(text)
    except ValueError as e:
        raise MetadataError(f"{side}: damaged denoiser metadata (not JSON: {e})") from None
    return cls.from_dict(data, side)
