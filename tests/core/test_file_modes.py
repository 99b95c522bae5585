"""Files we write get the user's normal mode (0o666 less the umask), like any file they make."""

import os

import numpy as np
import pytest
from conftest import file_mode
from PIL import Image

from denoiser.core.atomic import atomic_write
from denoiser.core.checkpoint import load_checkpoint, save_checkpoint
from denoiser.core.config import ModelConfig
from denoiser.core.nets import build_model
from denoiser.run.batch import denoise_files
from denoiser.run.inference import Denoiser


def test_checkpoint_gets_the_users_mode_not_0600(umask, tmp_path):
    model = build_model(ModelConfig(channels=3, width=8, levels=2))
    path = save_checkpoint(tmp_path / "runs" / "m.safetensors", model, note="x")
    assert file_mode(path) == 0o666 & ~umask
    assert load_checkpoint(path)[1]["note"] == "x"
    assert os.listdir(path.parent) == ["m.safetensors"]  # no temp file left beside it


def test_atomic_write_undoes_a_writer_that_sets_0600(umask, tmp_path):
    def write(tmp):  # what safetensors' save_file does
        tmp.write_bytes(b"data")
        os.chmod(tmp, 0o600)

    path = tmp_path / "engine.bin"
    path.write_bytes(b"old")
    assert atomic_write(path, write) == path and path.read_bytes() == b"data"
    assert file_mode(path) == 0o666 & ~umask and os.listdir(tmp_path) == ["engine.bin"]

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"data" and os.listdir(tmp_path) == ["engine.bin"]


def test_denoised_outputs_get_the_users_mode(umask, tiny_onnx, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    report = denoise_files(Denoiser.load(tiny_onnx), [str(src)], tmp_path / "out")
    assert report.ok and file_mode(tmp_path / "out" / "a.png") == 0o666 & ~umask
