"""Every tunable default lives here, in frozen dataclasses.

Other modules take these objects; the CLI builds them from flags; checkpoints store them as
JSON so a model can be rebuilt without any flags. Sigmas are on the 0-255 scale because that
is how people talk about noise levels, even though images inside the package are in [0, 1].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class NoiseConfig:
    """Synthetic noise added to clean crops to make training pairs."""

    kind: str = "gaussian"
    sigma_min: float = 0.0  # 0-255 scale; a range makes a blind denoiser
    sigma_max: float = 55.0
    # Users upload 8-bit files, so noise arrives clipped and rounded; train for that too.
    quantize_prob: float = 0.5


@dataclass(frozen=True)
class DataConfig:
    clean_dirs: tuple[str, ...] = ()
    procedural: bool = True  # dead-leaves images: training needs no files at all
    procedural_weight: float = 0.3  # share of procedural crops when folders are given too
    pairs: tuple[str, str] | None = None  # (noisy_dir, clean_dir) matched by file stem
    channels: int = 3
    crop: int = 64
    batch_size: int = 16
    num_workers: int = 0
    val_count: int = 16  # fixed, seeded validation crops held out from training
    val_crop: int = 128


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net autoencoder. `levels` sets the depth, hence the size alignment 2**levels."""

    channels: int = 3
    width: int = 32
    levels: int = 3
    blocks_per_level: int = 2
    residual: bool = True  # predict the noise and subtract it: an easier target


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    lr: float = 1e-3
    lr_min_factor: float = 0.02  # cosine schedule decays to lr * this
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto -> cuda when available, else cpu
    log_interval: int = 10
    val_interval: int = 200
    snapshot_interval: int = 500
    threads: int = 0  # torch CPU threads; 0 keeps torch's default


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved as config.json in its run folder."""

    noise: NoiseConfig = field(default_factory=NoiseConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 20
    ir_version: int = 10  # ONNX Runtime 1.31 accepts IR <= 13; keep a margin
    check_size: tuple[int, int] = (37, 53)  # odd on purpose: exercises the model's padding
    check_tolerance: float = 1e-4


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a (nested) config dataclass from a dict, ignoring unknown keys.

    Unknown keys are ignored so that older code can read checkpoints written by newer code
    that added options; missing keys take today's defaults.
    """
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        ftype = f.type if isinstance(f.type, type) else _resolve(cls, f.name)
        if dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            value = from_dict(ftype, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _resolve(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls)[name]


def dumps(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
