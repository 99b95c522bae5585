"""What each quality mode (fast, balanced, high) gains and costs: PSNR on Set12 (sigma 25) and
SIDD12 (real pairs), and seconds per megapixel, in one run on this machine.

    python scripts/bench_quality_modes.py --datasets ../shared/datasets [--model M] [--json out.json]

Every mode goes through `Denoiser.load(model, quality=...)` and the same scoring loop as
`denoiser eval` (the benchmark protocol, docs/ARCHITECTURE.md: 8-bit noisy input, seed = image
index, 8-bit outputs).
The modes run image by image in turns, so that load from other jobs falls on all alike; the
ratios of the times are the numbers to read on a shared machine. Set12 is gray: the colour
model runs it as gray RGB, as `Denoiser` runs gray images on a colour model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("fast", "balanced", "high")


def score_sets(datasets: Path, model: str, sigma: float, limit: int | None) -> dict:
    import torch

    from denoiser.bench.evaluate import matched_pairs, noisy_uint8
    from denoiser.core.data import list_images
    from denoiser.core.imageio import read_image, to_uint8
    from denoiser.core.metrics import psnr
    from denoiser.run.inference import Denoiser

    dns = {m: Denoiser.load(model, quality=m) for m in MODES}
    sets = {"Set12": [], "SIDD12": []}
    for i, p in enumerate(list_images(datasets / "Set12")[:limit]):
        clean = to_uint8(read_image(p)[0])
        sets["Set12"].append((noisy_uint8(clean, sigma, i), clean))
    for n, c in matched_pairs(datasets / "SIDD12" / "noisy", datasets / "SIDD12" / "clean")[:limit]:
        sets["SIDD12"].append((to_uint8(read_image(n)[0]), to_uint8(read_image(c)[0])))

    def db(a: np.ndarray, b: np.ndarray) -> float:
        t = [torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)[None], dtype=np.float32) / 255) for v in (a, b)]
        return float(psnr(*t)[0])

    out = {"model": model, "sigma": sigma, "described": {m: dn.describe() for m, dn in dns.items()}, "sets": {}}
    for name, items in sets.items():
        psnrs = {m: [] for m in MODES}
        secs = {m: 0.0 for m in MODES}
        mp = sum(c.shape[0] * c.shape[1] for _, c in items) / 1e6
        for noisy, clean in items:
            for m, dn in dns.items():  # in turns: machine load falls on every mode alike
                t = time.perf_counter()
                y = dn.denoise_array(noisy.astype(np.float32) / 255)
                secs[m] += time.perf_counter() - t
                psnrs[m].append(db(to_uint8(y), clean))
        rows = {m: {"psnr": round(float(np.mean(psnrs[m])), 4), "s_per_mp": round(secs[m] / mp, 3)} for m in MODES}
        for m in MODES:
            rows[m]["db_vs_balanced"] = round(rows[m]["psnr"] - rows["balanced"]["psnr"], 4)
            rows[m]["time_vs_balanced"] = round(secs[m] / secs["balanced"], 2)
        out["sets"][name] = {"images": len(items), "megapixels": round(mp, 3), "rows": rows}
    return out


def to_markdown(r: dict) -> str:
    lines = ["| set | mode | ran | PSNR dB | vs balanced dB | s / MP | time vs balanced |", "|---|---|---|---:|---:|---:|---:|"]
    for name, s in r["sets"].items():
        for m, row in s["rows"].items():
            what = r["described"][m].split(": ", 1)[-1].split(", tiles")[0]
            lines.append(f"| {name}{' (sigma %g)' % r['sigma'] if name == 'Set12' else ''} | {m} | {what} | "
                         f"{row['psnr']:.3f} | {row['db_vs_balanced']:+.3f} | {row['s_per_mp']:.2f} | "
                         f"{row['time_vs_balanced']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", required=True, help="folder holding Set12/ and SIDD12/{noisy,clean}/")
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "default-color.safetensors"))
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--limit", type=int, help="only the first N images of each set")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    result = score_sets(Path(args.datasets), args.model, args.sigma, args.limit)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
