"""ONNX export that checks itself.

The FP32 graph has dynamic batch, height and width, and carries the model config in its
metadata (key "denoiser"), so `Denoiser.load(model.onnx)` needs no flags. Every export is run
with ONNX Runtime at an odd size and compared with PyTorch; the result goes into a JSON
sidecar (`OUT.onnx.json`) beside the file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import file_sha256, load_checkpoint
from .config import ExportConfig, to_dict
from .model import UNet

INPUT_NAME, OUTPUT_NAME = "input", "output"


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def export_onnx(model: UNet, path: str | Path, cfg: ExportConfig = ExportConfig(),
                source: dict | None = None) -> dict:
    """Export `model` to FP32 ONNX at `path`, verify it, write the sidecar; return the sidecar."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().cpu()
    c = model.cfg.channels
    example = torch.rand(1, c, 2 * model.alignment, 3 * model.alignment)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    t0 = time.time()
    tmp = path.with_name(path.name + ".part")
    torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_shapes={"x": dims}, opset_version=cfg.opset, external_data=False, dynamo=True,
                      verbose=False)
    proto = onnx.load(str(tmp))
    proto.ir_version = min(proto.ir_version, cfg.ir_version)
    meta = {"model": to_dict(model.cfg), "alignment": model.alignment, "receptive_field": model.receptive_field,
            "precision": "fp32", "code_version": __version__}
    onnx.helper.set_model_props(proto, {"denoiser": json.dumps(meta)})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(path)

    check = check_against_torch(model, path, cfg)
    side = {**meta, "file": path.name, "sha256": file_sha256(path), "opset": cfg.opset,
            "ir_version": proto.ir_version, "dynamic_axes": ["batch", "height", "width"],
            "export_seconds": round(time.time() - t0, 2), "check": check, "source": source or {}}
    sidecar_path(path).write_text(json.dumps(side, indent=2))
    if not check["passed"]:
        raise RuntimeError(f"exported ONNX differs from PyTorch by {check['max_abs_diff']:.2e} "
                           f"(tolerance {cfg.check_tolerance:.0e}); see {sidecar_path(path)}")
    return side


def check_against_torch(model: UNet, path: Path, cfg: ExportConfig) -> dict:
    """Run the ONNX file with ONNX Runtime at an odd size (batch 2) and compare with PyTorch."""
    import onnxruntime as ort

    h, w = cfg.check_size
    x = torch.rand(2, model.cfg.channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    diff = float(np.abs(out - ref).max())
    return {"size": [h, w], "batch": 2, "max_abs_diff": diff, "tolerance": cfg.check_tolerance,
            "passed": bool(diff <= cfg.check_tolerance)}


def export_checkpoint(checkpoint: str | Path, out: str | Path, cfg: ExportConfig = ExportConfig()) -> dict:
    model, meta = load_checkpoint(checkpoint)
    source = {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint), "metrics": meta.get("metrics")}
    return export_onnx(model, out, cfg, source=source)


def read_onnx_metadata(path: str | Path) -> dict:
    """The "denoiser" metadata of an exported ONNX file (model config, alignment...)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if "denoiser" not in props:
        raise ValueError(f"{path}: ONNX file without denoiser metadata (export it with `denoiser export`)")
    return json.loads(props["denoiser"])
