"""Self-describing checkpoints: safetensors weights plus JSON metadata in the same file.

The metadata holds the model config (so loading needs no flags), the training config, the
data/noise description, metrics and the code version. Loading never unpickles anything, so
a checkpoint from a stranger cannot run code. Writes are atomic (temp file + rename), so a
run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .atomic import atomic_write
from .config import ModelConfig, from_dict, to_dict
from .nets import build_model

FORMAT = "denoiser-checkpoint-v1"
EXTRA_PREFIXES = ("opt.", "ema.", "rng.")  # training state; never part of the model


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
    header = {"format": FORMAT, "code_version": __version__, "model": to_dict(model.cfg), **meta}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"denoiser": json.dumps(header)}))


def read_metadata(path: str | Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("denoiser")
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if raw is None:
        raise ValueError(f"{path}: safetensors file without denoiser metadata (not a denoiser checkpoint)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from the file's own config and load its weights."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    model = build_model(from_dict(ModelConfig, meta["model"]))
    tensors = load_file(str(path), device=str(device))
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIXES)})
    return model.to(device).eval(), meta


def load_extra_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The training-state tensors of a snapshot (see `save_checkpoint`)."""
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path), device=str(device)).items() if k.startswith(EXTRA_PREFIXES)}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
