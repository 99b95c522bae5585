"""Every tunable default lives here, in frozen dataclasses.

Other modules take these objects; the CLI builds them from flags; checkpoints store them as
JSON so a model can be rebuilt without any flags. Sigmas are on the 0-255 scale because that
is how people talk about noise levels, even though images inside the package are in [0, 1].
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class NoiseConfig:
    """Synthetic noise added to clean crops to make training pairs.

    `spec` is the short string the CLI takes (grammar: noise/spec.py, kinds: noise/kinds.py), e.g.
    "gaussian:5-50", "poisson-gaussian", "camera", "gaussian|camera"; each sample draws its
    parameters from the ranges it names. A range of sigma makes a blind denoiser.
    """

    spec: str = "gaussian:0-55"  # sigma on the 0-255 scale
    # Users upload 8-bit files, so noise arrives clipped and rounded; train for that too.
    quantize_prob: float = 0.5


# Named chains. "camera-v1": what "camera" meant before it became a camera pipeline (shot + read
# noise added in sRGB, blurred Gaussian noise for demosaicing, JPEG); kept so old specs still parse.
NOISE_PRESETS: dict[str, str] = {
    "camera-v1": "poisson-gaussian:shot=2-20,read=0.5-6+correlated:sigma=1-8,scale=0.5-1.2+jpeg:60-95",
}


# What a model config may ask for (a checkpoint's or export's metadata comes from anyone): far
# beyond any real model, small enough that nothing absurd is built. Checked without torch, so a
# run from cached exports stays light (nets.check_config adds the architecture's name).
MODEL_BOUNDS: dict[str, tuple[int, int]] = {"channels": (1, 16), "width": (1, 4096), "levels": (0, 64),
                                            "blocks_per_level": (1, 64), "unshuffle": (1, 16)}


def check_model_sizes(cfg: "ModelConfig") -> None:
    """ValueError unless every size field of `cfg` is an integer within MODEL_BOUNDS."""
    for name, (lo, hi) in MODEL_BOUNDS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"model {name} {value!r} is not an integer in {lo}..{hi}")
    if not isinstance(cfg.residual, bool):
        raise ValueError(f"model residual {cfg.residual!r} is not true or false")
    if not isinstance(cfg.arch, str):
        raise ValueError(f"model arch {cfg.arch!r} is not a name")


@dataclass(frozen=True)
class DataConfig:
    clean_dirs: tuple[str, ...] = ()
    clean_weights: tuple[float, ...] = ()  # one per clean_dirs entry; () = every image equally likely
    procedural: bool = True  # dead-leaves images: training needs no files at all
    procedural_weight: float = 0.3  # share of procedural crops when folders are given too
    pairs: tuple[str, str] | None = None  # (noisy_dir, clean_dir) matched by file stem
    channels: int = 3
    crop: int = 64
    batch_size: int = 16
    num_workers: int = 0
    pairs_weight: float = 0.5  # share of paired crops when pairs and clean sources are mixed
    # Colour models also meet gray photos and scans, whose noise is the same in all three
    # channels; without such samples a colour model takes that noise for texture.
    gray_prob: float = 0.2
    val_count: int = 16  # fixed, seeded validation crops
    val_crop: int = 128
    val_dir: str | None = None  # validation folder: clean images, or noisy/ + clean/ pairs
    val_holdout: float = 0.05  # else hold out this share of training files, every k-th by name
    # Training images are held decoded (uint8) up to `memory_budget` bytes; past it they are read
    # from disk as training goes (slower), or, with `read_past_budget` off (uploads to the app),
    # refused. Larger images than `max_image_pixels` are refused (as `denoiser denoise --max-pixels`).
    max_image_pixels: int = 150_000_000
    memory_budget: int = 8 << 30
    read_past_budget: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """The network: `arch` names it (nets.ARCHS), the other fields size it.

    unet: `levels` sets the depth, hence the size alignment 2**levels. resunet: the same, on a
    grid `unshuffle` times coarser, with `blocks_per_level` residual blocks. s2dcnn: `levels`
    conv layers at 1/unshuffle resolution. Checkpoints written before `arch` existed are unets.
    """

    channels: int = 3
    width: int = 32
    levels: int = 3
    blocks_per_level: int = 2
    residual: bool = True  # predict the noise and subtract it: an easier target
    arch: str = "unet"
    unshuffle: int = 1  # pixel-unshuffle factor at the entry (resunet, s2dcnn); the unet ignores it


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    # > 0: train for this many seconds of wall time instead of `steps`; the lr schedule then
    # runs over time (so a recipe fills exactly the time it is given, on any machine).
    time_budget_s: float = 0.0
    # What the budget counts: "wall" seconds, or "cpu" seconds of this process. A niced run beside
    # tests and benchmarks may get a tenth of a core; on the wall clock its schedule would be spent
    # waiting, on the CPU clock it decays with the work actually done.
    budget_clock: str = "wall"
    epochs: int = 0  # > 0 overrides steps: one epoch = one crop per training image (or pair)
    solver: str = "adamw"  # adamw | adam | sgd (Nesterov momentum)
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant | step | onecycle
    warmup_steps: int = 50  # linear warm-up (not used by onecycle, which has its own ramp)
    # ... but never more than this share of a run counted in steps: `--steps 50` with 50 warm-up
    # steps would end before reaching its learning rate.
    warmup_max_share: float = 0.1
    lr_min_factor: float = 0.02  # cosine decays to lr * this
    step_every: int = 0  # step schedule: decay every N steps (0 = a third of the run)
    step_gamma: float = 0.1
    loss: str = "l1"  # l1 | l2 | charbonnier
    ssim_weight: float = 0.0  # adds ssim_weight * (1 - SSIM) to the loss
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    ema: float = 0.0  # EMA decay of weights, e.g. 0.999; 0 = off
    amp: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16, else off) | bf16 | fp16 | off
    channels_last: bool = False
    seed: int = 0
    device: str = "auto"  # auto -> cuda when available, else cpu
    log_interval: int = 10
    val_interval: int = 200
    snapshot_interval: int = 500
    preview_count: int = 4  # validation crops saved as noisy | output | clean previews
    tensorboard: bool = False
    threads: int = 0  # torch CPU threads; 0 keeps torch's default


# `--init` without `--lr`: fine-tuning at the from-scratch rate (1e-3) undoes what the start model
# learned (50 steps took the shipped model from 27.31 to 25.62 dB); the v2 models peak at 1e-4.
FINETUNE_LR = 1e-4

# The values some config fields may take, declared once: the CLI's choices, the app's lists and
# the modules that act on them (train.optim, core.metrics, deploy.export, deploy.lower) read
# them here, where importing costs nothing (`denoiser --help` must not import torch).
CHANNELS = (1, 3)  # DataConfig.channels, ModelConfig.channels: gray, colour
SOLVERS = ("adamw", "adam", "sgd")  # TrainConfig.solver
SCHEDULES = ("cosine", "constant", "step", "onecycle")  # TrainConfig.schedule
LOSSES = ("l1", "l2", "charbonnier")  # TrainConfig.loss (the functions: core.metrics.LOSSES)
AMP_MODES = ("auto", "bf16", "fp16", "off")  # TrainConfig.amp
PRECISIONS = ("fp32", "fp16", "int8")  # ExportConfig.precision
INT8_TARGETS = {  # ExportConfig.int8_target
    "tensorrt": "int8 symmetric activations (zero points 0), float biases: for TensorRT engines",
    "cpu": "uint8 activations with zero points, int32 biases: fastest on ONNX Runtime CPU; not for TensorRT",
}
INT8_WEIGHT_BITS = (0, 7, 8)  # ExportConfig.int8_weight_bits
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")  # ExportConfig.calib_method


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
    check_tolerance: float = 1e-4  # FP32 ONNX vs PyTorch, max abs difference
    precision: str = "fp32"  # fp32 | fp16 | int8
    int8_target: str = "tensorrt"  # tensorrt: zero points 0 (engines) | cpu: uint8, fastest on ONNX Runtime CPU
    int8_weight_bits: int = 0  # cpu target: 8 or 7 (reduce_range); 0 = this CPU's: 8 with VNNI, else 7
    # Held-out check: PSNR on clean images made noisy as the benchmark protocol says.
    check_dir: str | None = None  # None: the product's data/ sample images
    check_sigma: float = 25.0
    fp16_max_loss_db: float = 0.05  # PSNR drop against FP32 an export may have
    int8_max_loss_db: float = 0.2
    # INT8 calibration: noisy crops of clean images never in the check set.
    calib_dir: str | None = None  # None: procedural dead-leaves images + data/ samples
    calib_crops: int = 64
    calib_crop: int = 128
    calib_sigmas: tuple[float, ...] = (5.0, 10.0, 15.0, 25.0, 35.0, 50.0)
    # A noise spec for a calib_noise_share of the crops (the rest: Gaussian at calib_sigmas);
    # "auto": the checkpoint's own training mix where it records one. None by default: for the
    # v2 colour model (trained half on camera noise) calibrating on its mix lost as much on real
    # SIDD12 noise as Gaussian crops alone (BENCHMARKS.md, "INT8 calibration noise").
    calib_noise: str | None = None
    calib_noise_share: float = 0.5
    # minmax | percentile | entropy. Percentile (the 99.999th, ONNX Runtime's histogram): the
    # rare extreme activations no longer set the 8-bit step, which lost real-noise quality:
    # SIDD12's halves +0.00 to -0.05 dB against FP32 where min-max lost -0.05 to -0.14 (BENCHMARKS.md).
    calib_method: str = "percentile"
    # Mixed precision: layers (PyTorch names) kept out of the lower precision, on top of the
    # architecture's own `keep_float` (nets/__init__.py). INT8: in
    # float16 for --target tensorrt, float32 for --target cpu; FP16: in float32.
    keep_float: tuple[str, ...] = ()
    auto_mixed: bool = True  # INT8 over budget: find the sensitive layers and keep those in float
    max_float_layers: int = 6


@dataclass(frozen=True)
class EngineProfile:
    """The input shapes a TensorRT engine accepts; kernels are tuned for the `opt` shape.

    Tiles are what get fed to an engine, so the defaults cover tile sizes rather than photos:
    a 512 tile plus its margins fits in 1024; smaller inputs down to 16x16 run as they are.
    """

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    min_hw: tuple[int, int] = (16, 16)
    opt_hw: tuple[int, int] = (512, 512)
    max_hw: tuple[int, int] = (1024, 1024)

    def __post_init__(self) -> None:
        # Checked here so a bad profile fails at once, not deep inside the builder.
        for what, lo, mid, hi in (("batch", self.min_batch, self.opt_batch, self.max_batch),
                                  ("height", self.min_hw[0], self.opt_hw[0], self.max_hw[0]),
                                  ("width", self.min_hw[1], self.opt_hw[1], self.max_hw[1])):
            if not 1 <= lo <= mid <= hi:
                raise ValueError(f"engine profile {what}: need 1 <= min <= opt <= max, got "
                                 f"min={lo}, opt={mid}, max={hi}")

    def shapes(self, channels: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes."""
        return ((self.min_batch, channels, *self.min_hw), (self.opt_batch, channels, *self.opt_hw),
                (self.max_batch, channels, *self.max_hw))

    @classmethod
    def from_dict(cls, data: dict) -> "EngineProfile":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class SizeError(argparse.ArgumentTypeError, ValueError):
    """A size that does not parse: a ValueError to callers, its own message on argparse's command line."""


def _parse_pair(text: str, form: str, example: str) -> tuple[int, int]:
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        pair = tuple(int(p) for p in parts)
    except ValueError:
        raise SizeError(f"expected {form} such as {example}, got {text!r}") from None
    if len(pair) == 1:
        pair = pair * 2
    if len(pair) != 2 or min(pair) < 1:
        raise SizeError(f"expected {form} such as {example} with positive sides, got {text!r}")
    return pair  # type: ignore[return-value]


def parse_hw(text: str) -> tuple[int, int]:
    """ "512x768" (height x width, as engine profiles are written) or "512" (square) -> (512, 768)."""
    return _parse_pair(text, "HxW", "512x768")


def parse_wh(text: str) -> tuple[int, int]:
    """ "4000x3000" (width x height, as photo sizes are written) or "512" (square) -> (4000, 3000)."""
    return _parse_pair(text, "WxH", "4000x3000")


@dataclass(frozen=True)
class SynthConfig:
    """`denoiser synth`: noisy/clean pairs written as files, to look at or to train on with --pairs."""

    crop: int = 0  # 0: whole images, one pair each; N: N x N crops drawn exactly as training draws them
    count: int = 0  # pairs to write with crop > 0; 0: one per clean image (64 without images)
    seed: int = 0  # with crops: equal to the training seed, the crops and (on the CPU) the noise match
    channels: int = 0  # whole images: 0 keeps each file's own (gray stays gray); crops: 0 = DataConfig's


def parse_duration(text: str) -> float:
    """ "90m", "1.5h", "45s" or plain seconds ("3600") -> seconds."""
    s = str(text).strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    scale = units.get(s[-1:], None)
    number = s[:-1] if scale else s
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise ValueError(f"expected a duration such as 90m, 1.5h or 45s, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a (nested) config dataclass from a dict, ignoring unknown keys.

    Unknown keys are ignored so that older code can read checkpoints written by newer code
    that added options; missing keys take today's defaults.
    """
    if cls is NoiseConfig:
        data = _upgrade_noise(data)
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


def _upgrade_noise(data: dict) -> dict:
    # Runs before noise specs existed stored {kind, sigma_min, sigma_max}; say the same as a spec.
    if "spec" in data or "kind" not in data:
        return data
    # Imported here: config stays the bottom of core, importing none of its siblings at load.
    from denoiser.core.noise.kinds import KINDS

    lo, hi = KINDS["gaussian"].param("sigma").default
    return {**data, "spec": f"{data['kind']}:{data.get('sigma_min', lo):g}-{data.get('sigma_max', hi):g}"}


def _resolve(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls)[name]


def dumps(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
