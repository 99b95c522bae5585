import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from denoiser.cli.main import main
from denoiser.core.atomic import file_sha256
from denoiser.core.checkpoint import load_checkpoint
from denoiser.deploy.export import read_onnx_metadata, sidecar_path


def test_export_is_checked_and_described(tiny_checkpoint, tiny_onnx):
    onnx.checker.check_model(onnx.load(str(tiny_onnx)))
    side = json.loads(sidecar_path(tiny_onnx).read_text())
    assert side["check"]["passed"] and side["check"]["size"] == [37, 53]
    assert side["source"]["sha256"] == file_sha256(tiny_checkpoint)
    assert side["sha256"] == file_sha256(tiny_onnx)
    assert read_onnx_metadata(tiny_onnx)["model"]["width"] == 8


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (3, 3, 64, 40), (1, 3, 5, 7)])
def test_onnx_has_dynamic_batch_and_size_and_matches_torch(tiny_checkpoint, tiny_onnx, shape):
    model, _ = load_checkpoint(tiny_checkpoint)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    assert out.shape == shape and np.abs(out - ref).max() < 1e-4


def test_cli_export_reports_missing_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_export_refuses_a_bad_calibration_noise_spec_before_any_work(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "x-int8.onnx"
    with pytest.raises(SystemExit):
        main(["export", str(tiny_checkpoint), "--precision", "int8", "--calib-noise", "gausian:25", "-o", str(out)])
    assert "gausian" in capsys.readouterr().err and not out.exists()


def test_fp32_export_records_its_precision_and_psnr_on_held_out_images(tiny_onnx):
    side = json.loads(sidecar_path(tiny_onnx).read_text())
    assert side["precision"] == read_onnx_metadata(tiny_onnx)["precision"] == "fp32"
    q = side["quality"]
    assert q["passed"] and q["images"] == "data/ samples (3 images)" and q["sigma"] == 25.0
    assert abs(q["loss_db"]) <= 0.01 and q["psnr_vs_fp32"] > 60  # the same model, up to float rounding


def test_cli_export_names_lowered_files_by_precision(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    import shutil

    ckpt = tmp_path / "mine.safetensors"
    shutil.copy(tiny_checkpoint, ckpt)
    assert main(["export", str(ckpt), "--precision", "fp16", "--from-fp32", str(tiny_onnx)]) == 0
    out = tmp_path / "mine-fp16.onnx"
    assert read_onnx_metadata(out)["precision"] == "fp16"
    printed = capsys.readouterr().out
    assert f"wrote {out} (fp16" in printed and "loss" in printed and "budget 0.05" in printed
