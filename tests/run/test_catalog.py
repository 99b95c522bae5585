"""The model picker's list: every runnable artifact, no training snapshots, default first."""

import os
import time

from denoiser.run.catalog import discover_models
from denoiser.run.inference import DEFAULT_GRAY_MODEL, DEFAULT_MODEL


def touch(path, age: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    t = time.time() - age
    os.utime(path.parent, (t, t))
    return path


def test_lists_checkpoints_exports_engines_and_runs(tmp_path):
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    for name in ("gray.safetensors", "gray.onnx", "gray.onnx.json", "gray.engine", ".gray.safetensors.abc.part",
                 "MODEL_CARD.md"):
        touch(ck / name)
    for name in ("last.safetensors", "best.safetensors", "model.safetensors", "model.onnx"):
        touch(runs / "old" / name)
    os.utime(runs / "old", (time.time() - 100, time.time() - 100))
    touch(runs / "new" / "model.safetensors")
    extra = touch(tmp_path / "elsewhere" / "mine.onnx")

    entries = discover_models(ck, runs, extra=(extra, ck / "gray.onnx"))
    names = [e.path.relative_to(tmp_path).as_posix() for e in entries]
    assert names == ["elsewhere/mine.onnx", "checkpoints/gray.onnx", "checkpoints/gray.engine",
                     "checkpoints/gray.safetensors", "runs/new/model.safetensors", "runs/old/model.safetensors",
                     "runs/old/best.safetensors", "runs/old/model.onnx"]
    kinds = {e.path.name: e.kind for e in entries}
    assert kinds["gray.engine"] == "engine" and kinds["model.onnx"] == "onnx" and kinds["mine.onnx"] == "onnx"
    # Short names that fit the picker: the run's name, not a path that gets cut off.
    labels = {e.path.relative_to(tmp_path).as_posix(): e.label for e in entries}
    assert labels == {"elsewhere/mine.onnx": "elsewhere/mine (ONNX)", "checkpoints/gray.onnx": "gray (ONNX)",
                      "checkpoints/gray.engine": "gray (TensorRT)", "checkpoints/gray.safetensors": "gray",
                      "runs/new/model.safetensors": "new/model", "runs/old/model.safetensors": "old/model",
                      "runs/old/best.safetensors": "old/best", "runs/old/model.onnx": "old/model (ONNX)"}


def test_two_models_with_one_short_name_are_told_apart_by_their_path(tmp_path):
    a, b = touch(tmp_path / "x" / "run" / "model.onnx"), touch(tmp_path / "y" / "run" / "model.onnx")
    labels = [e.label for e in discover_models(None, None, extra=(a, b))]
    assert len(set(labels)) == 2 and all(label.endswith("run/model.onnx") for label in labels)


def test_the_shipped_default_comes_first_and_missing_folders_are_fine(tmp_path):
    touch(tmp_path / "a.safetensors")
    entries = discover_models(tmp_path / "nope", None, extra=(tmp_path / "a.safetensors", DEFAULT_MODEL))
    if DEFAULT_MODEL.exists():
        assert entries[0].path == DEFAULT_MODEL.resolve()
        # the picker says that gray uploads go to the gray model with it (ui_denoise does that)
        assert entries[0].label.endswith(f"{DEFAULT_MODEL.stem} · gray: {DEFAULT_GRAY_MODEL.stem}")
    assert tmp_path / "a.safetensors" in [e.path for e in entries]
