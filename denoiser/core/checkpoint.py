"""Self-describing checkpoints: safetensors weights plus JSON metadata in the same file.

The metadata holds the model config (so loading needs no flags), the training config, the
data/noise description, metrics and the code version. Loading never unpickles anything, so
a checkpoint from a stranger cannot run code. Writes are atomic (temp file + rename), so a
run killed mid-save leaves the previous checkpoint intact.

Nor can a stranger's checkpoint take the machine's memory: before any model is built, its
config is checked against the tensor shapes in the safetensors header (which safetensors
checks against the file's size, so a 5 MB file cannot claim a 20 GB model) and the model's
estimated memory against a limit. Weights that are not finite or far outside any trained
range (NaN, 1e30) are refused too: they would make black images, not errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from denoiser.core.atomic import atomic_write
from denoiser.core.config import ModelConfig, to_dict
from denoiser.core.metadata import CHECKPOINT_FORMAT, CheckpointMeta
from denoiser.core.nets import build_model, tensor_shapes
from denoiser.core.version import __version__

FORMAT = CHECKPOINT_FORMAT
EXTRA_PREFIXES = ("opt.", "ema.", "rng.")  # training state; never part of the model
# A model to load may take this much: its weights plus one smallest tile's activations. The
# shipped models take 10 MB; a U-Net of width 256 about 1 GB.
MAX_MODEL_BYTES = 4 << 30
# Trained weights stay far below this (ours: under 1); a file with larger ones is broken or hostile.
MAX_ABS_WEIGHT = 1e4
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def save_checkpoint(path: str | Path, model: nn.Module, extra_tensors: dict[str, torch.Tensor] | None = None,
                    **meta: Any) -> Path:
    """Save weights + metadata. Extra keyword arguments must be JSON-serialisable.

    `extra_tensors` (optimizer moments, EMA, RNG state of a training snapshot) go into the
    same file under prefixed names, so a snapshot is one atomic write: weights and training
    state can never come from different steps.
    """
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DDP
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        assert k.startswith(EXTRA_PREFIXES), k
        tensors[k] = v.detach().cpu().contiguous()
    # Through the record, so a field of the wrong type fails here, not when the file is read.
    header = CheckpointMeta.from_dict({"format": FORMAT, "code_version": __version__, "model": to_dict(model.cfg),
                                       **meta}, path).to_dict()
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"denoiser": json.dumps(header)}))


def read_metadata(path: str | Path) -> dict:
    """The checkpoint's metadata as the plain JSON object (see `read_checkpoint_meta`)."""
    return read_checkpoint_meta(path).to_dict()


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """The checkpoint's metadata, typed; ValueError naming the file for anything else."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("denoiser")
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if raw is None:
        raise ValueError(f"{path}: safetensors file without denoiser metadata (not a denoiser checkpoint)")
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: damaged denoiser metadata (not a JSON object)")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    return CheckpointMeta.from_dict(meta, path)


def model_config(meta: CheckpointMeta | dict, path: str | Path = "checkpoint") -> ModelConfig:
    """The model config in a checkpoint's metadata (`tensor_shapes` checks its sizes)."""
    if isinstance(meta, dict):
        meta = CheckpointMeta.from_dict({"format": FORMAT, **meta}, path)
    return meta.model_config(path)


def _header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) of the file's model tensors, read from its header (no weights)."""
    with safe_open(str(path), framework="pt") as f:
        return {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()
                if not k.startswith(EXTRA_PREFIXES)}


def check_model_file(path: str | Path, meta: CheckpointMeta | dict, max_bytes: float = MAX_MODEL_BYTES) -> ModelConfig:
    """The file's model config, once it matches the file's tensors and fits `max_bytes`; else ValueError.

    Nothing is built or loaded: the shapes come from a model on the meta device and the header.
    """
    cfg = model_config(meta, path)
    try:
        want, shell = tensor_shapes(cfg)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    have = _header(path)
    wrong = [f"{k} is {'x'.join(map(str, have[k][1]))} in the file, the config needs {'x'.join(map(str, v))}"
             for k, v in want.items() if k in have and have[k][1] != v]
    missing, unknown = [k for k in want if k not in have], [k for k in have if k not in want]
    if wrong or missing or unknown:
        detail = wrong[:1] + ([f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"] if missing else []) + \
            ([f"{len(unknown)} unknown tensor(s), e.g. {unknown[0]}"] if unknown else [])
        raise ValueError(f"{path}: the model config in its metadata ({cfg.arch}, width {cfg.width}, levels "
                         f"{cfg.levels}) does not match its weights: {'; '.join(detail)}")
    odd = next((k for k, (dtype, _) in have.items() if dtype not in FLOAT_DTYPES), None)
    if odd is not None:
        raise ValueError(f"{path}: weight {odd} is of type {have[odd][0]}, not a float type")
    need = _memory_bytes(want, shell)
    if need > max_bytes:
        raise ValueError(f"{path}: this model would need about {need / 2**30:.1f} GiB of memory; the limit "
                         f"is {max_bytes / 2**30:.1f} GiB")
    return cfg


def _memory_bytes(shapes: dict[str, tuple[int, ...]], model: nn.Module) -> float:
    """FP32 weights plus the activations of the smallest tile (one alignment step plus margins)."""
    side = model.alignment + 2 * math.ceil(model.receptive_field / model.alignment) * model.alignment
    return 4 * sum(math.prod(v) for v in shapes.values()) + model.activation_bytes_per_pixel() * side**2


def estimate_model_bytes(cfg: ModelConfig) -> float:
    """The memory a model of `cfg` takes to run at all (see `_memory_bytes`), nothing built."""
    return _memory_bytes(*tensor_shapes(cfg))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    max_bytes: float = MAX_MODEL_BYTES) -> tuple[nn.Module, dict]:
    """`load_model` with the metadata as the plain JSON object."""
    model, meta = load_model(path, device, max_bytes)
    return model, meta.to_dict()


def load_model(path: str | Path, device: str | torch.device = "cpu",
               max_bytes: float = MAX_MODEL_BYTES) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model from the file's own config and load its weights (see the module
    docstring for what is checked first; `max_bytes` bounds the model's estimated memory)."""
    meta = read_checkpoint_meta(path)
    cfg = check_model_file(path, meta, max_bytes)
    tensors = {}
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        for k in f.keys():
            if k.startswith(EXTRA_PREFIXES):
                continue  # a snapshot's training state: not needed for the model
            t = tensors[k] = f.get_tensor(k)
            if t.numel() and not float(t.abs().max()) <= MAX_ABS_WEIGHT:  # NaN fails this too
                raise ValueError(f"{path}: weight {k} holds values that are not finite or far outside any "
                                 f"trained range (largest magnitude {float(t.abs().max()):.3g}); the file is broken")
    model = build_model(cfg)
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta


def load_extra_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The training-state tensors of a snapshot (see `save_checkpoint`)."""
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path), device=str(device)).items() if k.startswith(EXTRA_PREFIXES)}
