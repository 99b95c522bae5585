import json
import os
import pickle
import resource
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from denoiser.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from denoiser.core.config import ModelConfig, from_dict
from denoiser.core.nets.unet import UNet


def test_roundtrip_rebuilds_model_without_flags(tmp_path):
    cfg = ModelConfig(channels=1, width=8, levels=3)
    model = UNet(cfg).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, metrics={"val_psnr": 30.0})
    loaded, meta = load_checkpoint(path)
    assert loaded.cfg == cfg and meta["metrics"]["val_psnr"] == 30.0
    x = torch.rand(1, 1, 19, 23)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob("*.part"))  # atomic write leaves no temp file


def test_refuses_foreign_safetensors_and_pickles(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a denoiser checkpoint"):
        read_metadata(tmp_path / "other.safetensors")
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(evil)


def resave(src, dst, scale: dict[str, float] | None = None, **model_fields):
    """A copy of checkpoint `src` with some weights scaled and some model config fields changed."""
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["denoiser"])
        tensors = {k: f.get_tensor(k) * (scale or {}).get(k, 1.0) for k in f.keys()}
    meta["model"].update(model_fields)
    save_file(tensors, str(dst), metadata={"denoiser": json.dumps(meta)})
    return dst


@pytest.mark.parametrize("fields, message", [
    ({"width": 4096}, "does not match its weights: inc.0.weight is 8x3x3x3 in the file, the config needs 4096x3x3x3"),
    ({"levels": 100}, "model levels 100 is not an integer in 0..64"),
    ({"width": "wide"}, "model width 'wide' is not an integer"),
    ({"levels": 3}, "does not match its weights"),  # a plausible config, other tensors
])
def test_a_config_that_does_not_match_the_weights_is_refused_before_anything_is_built(
        tiny_checkpoint, tmp_path, fields, message):
    """Metadata from a stranger asking for a 20 GB model (width 4096) or 2**100 channels (levels
    100): refused from the header, in a CLI whose address space is held to 8 GiB, with a message."""
    evil = resave(tiny_checkpoint, tmp_path / "evil.safetensors", **fields)
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")

    def bounded():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # building the model for real would fail

    proc = subprocess.run([sys.executable, "-m", "denoiser", "denoise", str(tmp_path / "in.png"), "-o",
                           str(tmp_path / "out"), "--model", str(evil), "--backend", "torch"],
                          capture_output=True, text=True, timeout=300, preexec_fn=bounded,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_models_estimated_memory_is_checked_against_a_limit(tiny_checkpoint):
    from denoiser.core.checkpoint import MAX_MODEL_BYTES, estimate_model_bytes

    need = estimate_model_bytes(from_dict(ModelConfig, read_metadata(tiny_checkpoint)["model"]))
    with pytest.raises(ValueError, match=r"would need about 0\.0 GiB of memory; the limit is 0\.0 GiB"):
        load_checkpoint(tiny_checkpoint, max_bytes=need - 1)
    assert load_checkpoint(tiny_checkpoint, max_bytes=need)[0].cfg.width == 8
    # the real limit: every model we ship fits with room to spare, a width-4096 one does not
    shipped = sorted((REPO / "checkpoints").glob("*.safetensors"))
    assert len(shipped) >= 4  # the defaults and the v1 models
    for path in shipped:
        assert 10 * estimate_model_bytes(from_dict(ModelConfig, read_metadata(path)["model"])) < MAX_MODEL_BYTES, path
    assert estimate_model_bytes(ModelConfig(width=256)) < MAX_MODEL_BYTES < estimate_model_bytes(ModelConfig(width=4096))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e30])
def test_weights_that_are_not_finite_or_absurd_are_refused(tiny_checkpoint, tmp_path, value):
    bad = resave(tiny_checkpoint, tmp_path / "bad.safetensors", scale={"outc.bias": value})
    with pytest.raises(ValueError, match="weight outc.bias holds values that are not finite or far outside"):
        load_checkpoint(bad)
