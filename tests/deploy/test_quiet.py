"""`denoiser export` prints our lines only: no notices third-party libraries mean for their developers."""

import logging
import os
import shutil
import stat
import warnings

from denoiser.cli.main import main
from denoiser.deploy.export import read_onnx_metadata, sidecar_path
from denoiser.deploy.quiet import third_party_quiet


def test_third_party_quiet_drops_notices_and_the_handler_they_install(monkeypatch, capfd):
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a fresh process
    with third_party_quiet():
        logging.warning("Please consider to run pre-processing before quantization.")  # installs a handler
        warnings.warn("a developer's notice", UserWarning)
        print("calibrating ...")
    assert logging.root.handlers == [] and capfd.readouterr() == ("", "")
    with third_party_quiet():
        logging.error("a real failure")  # errors still show
    assert "a real failure" in capfd.readouterr().err
    monkeypatch.setattr(logging.root, "handlers", [])


def test_int8_export_prints_only_our_line_and_files_get_the_users_mode(tiny_checkpoint, tiny_onnx, tmp_path,
                                                                       monkeypatch, capfd):
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a fresh `denoiser` process
    ckpt, out = tmp_path / "mine.safetensors", tmp_path / "mine-int8.onnx"
    shutil.copy(tiny_checkpoint, ckpt)
    old = os.umask(0o027)
    try:
        code = main(["export", str(ckpt), "--precision", "int8", "--from-fp32", str(tiny_onnx), "--calib-crops", "8",
                     "--no-auto-mixed", "-o", str(out)])
    finally:
        os.umask(old)
    captured = capfd.readouterr()
    assert code == 0, captured
    assert read_onnx_metadata(out)["precision"] == "int8"
    assert captured.err == "" and "pre-processing" not in captured.out
    assert captured.out.splitlines() == [captured.out.strip()] and captured.out.startswith(f"wrote {out} (int8")
    assert logging.root.handlers == []  # no handler left to print later third-party records
    assert stat.S_IMODE(os.stat(out).st_mode) == stat.S_IMODE(os.stat(sidecar_path(out)).st_mode) == 0o640
