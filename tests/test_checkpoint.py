import pickle

import pytest
import torch
from safetensors.torch import save_file

from denoiser.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from denoiser.config import ModelConfig
from denoiser.nets.unet import UNet


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
