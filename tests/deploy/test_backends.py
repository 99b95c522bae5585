"""Which backend runs which artifact: each backend's declaration, and the one function that
turns --backend (auto included) into the backends to try (deploy/backends.py)."""

import json

import pytest

from denoiser.deploy.backends import (
    BACKEND_CHOICES,
    BACKENDS,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    artifact_kind,
    check_precision,
    choose_backends,
)
from denoiser.run.inference import Denoiser

FILES = {"checkpoint": "m.safetensors", "onnx": "m.onnx", "engine": "m.engine"}
# What each backend runs: the contract the CLI's --backend and the app's list rest on.
RUNS = {"torch": {"checkpoint"}, "onnxruntime": {"checkpoint", "onnx"}, "tensorrt": {"engine"}}
REFUSAL = {"checkpoint": "runs engines: build one", "onnx": "runs on the onnxruntime backend",
           "engine": "runs only on the tensorrt backend"}


def test_the_backend_names_are_as_they_were():
    assert BACKEND_CHOICES == ("auto", "torch", "onnxruntime", "tensorrt")
    assert {name: set(b.artifacts) for name, b in BACKENDS.items()} == RUNS


@pytest.mark.parametrize("backend", sorted(RUNS))
@pytest.mark.parametrize("kind", sorted(FILES))
def test_each_backend_takes_what_it_declares_and_refuses_the_rest(backend, kind):
    if kind in RUNS[backend]:
        for cuda in (False, True):
            assert choose_backends(FILES[kind], backend, cuda=cuda) == (backend,)
    else:
        with pytest.raises(ValueError, match=REFUSAL[kind]):
            choose_backends(FILES[kind], backend, cuda=False)


def test_auto_picks_by_artifact_and_gpu():
    assert choose_backends("m.engine", "auto", cuda=False) == ("tensorrt",)
    assert choose_backends("m.onnx", "auto", cuda=True) == ("onnxruntime",)
    assert choose_backends("m.safetensors", "auto", cuda=True) == ("torch",)
    # on a CPU, ONNX Runtime (through the checkpoint's export), PyTorch where the export fails
    assert choose_backends("m.safetensors", "auto", cuda=False) == ("onnxruntime", "torch")
    assert choose_backends("M.SafeTensors", "auto", device="cpu") == ("onnxruntime", "torch")  # a CPU asked for


def test_unknown_backends_and_files_are_refused():
    with pytest.raises(ValueError, match="unknown backend 'cuda'; choose from auto, torch, onnxruntime, tensorrt"):
        choose_backends("m.onnx", "cuda")
    with pytest.raises(ValueError, match="expected a .safetensors checkpoint"):
        artifact_kind("m.pt")
    assert {artifact_kind(f) for f in FILES.values()} == set(FILES)


def test_precisions_are_declared_and_checked():
    assert TorchBackend.precisions == ("fp32",)
    assert OnnxRuntimeBackend.precisions == TensorRTBackend.precisions == ("fp32", "fp16", "int8")
    check_precision("onnxruntime", "int8", "m.onnx")
    check_precision("tensorrt", "unknown", "m.engine")  # an engine built without the ONNX sidecar
    with pytest.raises(ValueError, match="precision 'bf16' is not one the onnxruntime backend runs"):
        check_precision("onnxruntime", "bf16", "m.onnx")


def test_availability_is_what_this_machine_has():
    import torch

    assert TorchBackend.available() and OnnxRuntimeBackend.available()  # both are dependencies
    if not torch.cuda.is_available():
        assert not TensorRTBackend.available()  # TensorRT needs a GPU


def test_loading_refuses_what_the_backend_does_not_run(tiny_checkpoint, tiny_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not read: refused before")
    for path, refused in ((tiny_checkpoint, ["tensorrt"]), (tiny_onnx, ["torch", "tensorrt"]),
                          (engine, ["torch", "onnxruntime"])):
        for backend in refused:
            with pytest.raises(ValueError, match=REFUSAL[artifact_kind(path)]):
                Denoiser.load(path, backend=backend)
    assert Denoiser.load(tiny_checkpoint, backend="torch").backend.name == "torch"
    assert Denoiser.load(tiny_onnx, backend="onnxruntime").backend.name == "onnxruntime"


def test_an_onnx_file_of_a_precision_no_backend_runs_is_refused(tiny_onnx, tmp_path):
    import onnx

    proto = onnx.load(str(tiny_onnx))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = {**json.loads(props["denoiser"]), "precision": "bf16"}
    onnx.helper.set_model_props(proto, {**props, "denoiser": json.dumps(meta)})
    onnx.save(proto, str(tmp_path / "bf16.onnx"))
    with pytest.raises(ValueError, match="precision 'bf16'"):
        Denoiser.load(tmp_path / "bf16.onnx")
