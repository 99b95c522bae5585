"""What INT8 calibration noise costs the CPU INT8 export, side by side with FP32.

    python scripts/study_calib.py checkpoints/default-color.safetensors --datasets ../shared/datasets

One full-INT8 CPU export (what `quality=fast` and the default backend run) per calibration
variant: Gaussian crops only (the protocol at ExportConfig.calib_sigmas), and the checkpoint's
own training noise mix in a share of the crops. Each is scored with FP32 in the same run on
Set12 (sigma 15/25/50, gray files as gray RGB on a colour model), the CBSD432 hold-out (colour
models; the 21 photos the recipes never train on) and SIDD12 (real pairs). A choice between
variants is made on SIDD12's first half (pairs 00-05), as scripts/score_models.py's choices
are, so the second half is a fair read of it. Prints one Markdown table; --json keeps the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIGMAS = (15.0, 25.0, 50.0)
SHARES = (0.0, 0.5, 1.0)  # of the calibration crops that carry the training mix


def export_variant(checkpoint: Path, share: float, spec: str, fp32_onnx: Path, out: Path) -> dict:
    from denoiser.core.atomic import sidecar_path
    from denoiser.core.checkpoint import load_checkpoint
    from denoiser.core.config import ExportConfig
    from denoiser.deploy.cpu_features import int8_weight_bits
    from denoiser.deploy.export import export_onnx

    model = load_checkpoint(checkpoint)[0]
    cfg = ExportConfig(precision="int8", int8_target="cpu", int8_weight_bits=int8_weight_bits(), auto_mixed=False,
                       calib_noise=spec if share else None, calib_noise_share=share or 0.5)
    try:
        side = export_onnx(model, out, cfg, source={"checkpoint": str(checkpoint)}, from_fp32=fp32_onnx)
    except RuntimeError:  # over the check's budget: the file and its numbers are still written
        side = json.loads(sidecar_path(out).read_text())
    return side["quality"]


def score(dn, datasets: Path, colour: bool) -> dict:
    from denoiser.bench.evaluate import evaluate, evaluate_pairs

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_quality import held_out

    row = {f"Set12 σ{s:g}": evaluate(dn, datasets / "Set12", s)["psnr"] for s in SIGMAS}
    if colour:
        held = held_out(datasets / "CBSD432")[1]
        row.update({f"CBSD σ{s:g}": evaluate(dn, held, s)["psnr"] for s in SIGMAS})
    pairs = sorted(evaluate_pairs(dn, datasets / "SIDD12" / "noisy", datasets / "SIDD12" / "clean")["per_image"],
                   key=lambda r: r["image"])
    psnrs = [r["psnr"] for r in pairs]
    half = len(psnrs) // 2
    row.update({"SIDD12": sum(psnrs) / len(psnrs), "SIDD 00-05 (choice)": sum(psnrs[:half]) / half,
                "SIDD 06-11": sum(psnrs[half:]) / (len(psnrs) - half)})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding Set12/, CBSD432/ and SIDD12/")
    ap.add_argument("--shares", type=float, nargs="+", default=list(SHARES),
                    help="shares of the calibration crops with the training mix (0: Gaussian only)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    from denoiser.core.checkpoint import read_checkpoint_meta
    from denoiser.core.config import ExportConfig
    from denoiser.deploy.export import with_training_noise
    from denoiser.run.export_cache import onnx_for_checkpoint
    from denoiser.run.inference import Denoiser

    meta = read_checkpoint_meta(args.checkpoint)
    spec = with_training_noise(ExportConfig(calib_noise="auto"), meta).calib_noise
    if not spec:
        raise SystemExit(f"{args.checkpoint} records no training noise mix")
    colour = meta.model_config().channels == 3
    fp32 = onnx_for_checkpoint(args.checkpoint)
    rows = {"FP32": {"check dB": 0.0, **score(Denoiser.load(fp32), args.datasets, colour)}}
    with tempfile.TemporaryDirectory() as tmp:
        for share in args.shares:
            out = Path(tmp) / f"int8-{share:g}.onnx"
            quality = export_variant(args.checkpoint, share, spec, fp32, out)
            name = f"INT8, training mix in {share:.0%} of the crops"
            rows[name] = {"check dB": -quality["loss_db"], **score(Denoiser.load(out), args.datasets, colour)}
            print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    cols = list(rows["FP32"])
    print(f"{args.checkpoint} (training mix {spec}); dB, INT8 rows as the difference to FP32\n")
    print("| calibration | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for name, row in rows.items():
        vals = [row[c] if name == "FP32" else row[c] - rows["FP32"][c] for c in cols]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" if name == "FP32" else f"{v:+.3f}" for v in vals) + " |")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "spec": spec, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
