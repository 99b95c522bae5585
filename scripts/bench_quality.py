"""Our models against the classics on Set12, in one run on one machine.

    python scripts/bench_quality.py --datasets ../shared/datasets --write BENCHMARKS.md

Every method goes through the same protocol loop (denoiser.evaluate.evaluate_fn, DESIGN.md:
8-bit clipped noisy input with a fixed seed per image, 8-bit output):

- our models (default: the shipped gray and colour models; the colour one runs the gray images
  as RGB and is averaged back), blind: they are not told sigma, through the default backend;
- OpenCV non-local means, told sigma through its filter strength h, which is tuned per sigma
  on Train400 images (never on the test set) over a grid of h / sigma;
- BM3D (the `bm3d` package, both stages), told the true sigma.

Prints a Markdown table (mean PSNR/SSIM over the set, seconds per megapixel on this machine)
with published Set12 numbers of DnCNN, FFDNet and DRUNet beside it; --write replaces the
table's section in BENCHMARKS.md (or appends it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoiser.evaluate import evaluate_fn  # noqa: E402
from denoiser.imageio import to_uint8  # noqa: E402

# Set12 mean PSNR in dB, as the papers report them (float noise, not clipped or rounded; each
# model told sigma or trained per sigma, except DnCNN-B). From the DRUNet paper's Table
# (Zhang et al., "Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021) and
# the DnCNN paper (Zhang et al., TIP 2017).
PUBLISHED: dict[str, dict[int, float]] = {
    "BM3D (published)": {15: 32.37, 25: 29.97, 50: 26.72},
    "DnCNN-S (published, one model per sigma)": {15: 32.86, 25: 30.44, 50: 27.18},
    "DnCNN-B (published, blind)": {15: 32.68, 25: 30.36, 50: 27.21},
    "FFDNet (published)": {15: 32.75, 25: 30.43, 50: 27.32},
    "DRUNet (published)": {15: 33.25, 25: 30.94, 50: 27.90},
}
NLM_FACTORS = np.round(np.arange(0.5, 1.61, 0.1), 2)  # h / sigma grid for tuning
START, END = "<!-- bench_quality:start -->", "<!-- bench_quality:end -->"


def nlm(h: float) -> Callable[[np.ndarray], np.ndarray]:
    import cv2

    def run(arr: np.ndarray) -> np.ndarray:
        u8 = to_uint8(arr)
        if arr.shape[2] == 1:
            out = cv2.fastNlMeansDenoising(u8[..., 0], None, h=float(h), templateWindowSize=7, searchWindowSize=21)
            return out[..., None].astype(np.float32) / 255.0
        out = cv2.fastNlMeansDenoisingColored(u8, None, float(h), float(h), 7, 21)
        return out.astype(np.float32) / 255.0
    return run


def bm3d(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    import bm3d as bm3d_pkg

    def run(arr: np.ndarray) -> np.ndarray:
        if arr.shape[2] == 1:
            out = bm3d_pkg.bm3d(arr[..., 0], sigma_psd=sigma / 255.0)
        else:
            out = bm3d_pkg.bm3d_rgb(arr, sigma_psd=sigma / 255.0)
        out = np.asarray(out, dtype=np.float32).reshape(arr.shape)
        return np.clip(out, 0.0, 1.0)
    return run


def tune_nlm(tune_dir: str, sigma: float, limit: int) -> tuple[float, float]:
    """The h with the best mean PSNR on the tuning images; returns (h, that PSNR)."""
    scores = {f: evaluate_fn(nlm(f * sigma), tune_dir, sigma, seed=1000, limit=limit)["psnr"] for f in NLM_FACTORS}
    best = max(scores, key=scores.get)
    return float(best * sigma), scores[best]


def table(results: dict, sigmas: list[int], meta: dict) -> str:
    ref = results.get("BM3D")
    head = "| method | " + " | ".join(f"PSNR σ{s}" for s in sigmas) + " | " + \
        " | ".join(f"SSIM σ{s}" for s in sigmas) + " | s / MP |"
    lines = [head, "|" + "---|" * (2 * len(sigmas) + 2)]
    for name, per in results.items():
        cells = []
        for s in sigmas:
            p = per[s]["psnr"]
            delta = f" ({p - ref[s]['psnr']:+.2f})" if ref and name != "BM3D" else ""
            cells.append(f"{p:.2f}{delta}")
        ssims = [f"{per[s]['ssim']:.4f}" for s in sigmas]
        spm = np.mean([per[s]["seconds_per_megapixel"] for s in sigmas])
        lines.append(f"| {name} | " + " | ".join(cells + ssims) + f" | {spm:.2f} |")
    for name, per in PUBLISHED.items():
        lines.append(f"| *{name}* | " + " | ".join(f"*{per[s]:.2f}*" if s in per else "-" for s in sigmas) +
                     " | " + " | ".join("-" for _ in sigmas) + " | - |")
    nlm_h = ", ".join(f"σ{s}: h={meta['nlm_h'][str(s)]:.1f}" for s in sigmas)
    notes = [
        f"Set12 ({meta['images']} images), DESIGN.md protocol (8-bit clipped noisy input, seed = image index), "
        f"{meta['machine']}, {meta['date']}, `{meta['command']}` ({meta['minutes']:.1f} min).",
        "In brackets: dB above (+) or below (-) BM3D run here on the same noisy images. "
        "Our models are blind (one model for every sigma, not told it); NLM and BM3D are told sigma. "
        f"NLM h tuned per sigma on {meta['tune_images']} Train400 images: {nlm_h}.",
        "Published rows (italics) come from the papers, on float noise that is neither clipped nor "
        "rounded, so they are a reference, not a same-protocol comparison: the two BM3D rows show "
        "how much the protocol moves a number.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def write_section(path: Path, text: str) -> None:
    section = f"{START}\n{text}{END}"
    doc = path.read_text() if path.exists() else ""
    if START in doc and END in doc:
        doc = doc[:doc.index(START)] + section + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Quality against the classics (Set12)\n\n" + section + "\n"
    path.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="../shared/datasets", help="folder holding Set12/ and Train400/")
    ap.add_argument("--models", nargs="*", default=["checkpoints/default-gray.safetensors",
                                                      "checkpoints/default-color.safetensors"])
    ap.add_argument("--sigmas", type=int, nargs="+", default=[15, 25, 50])
    ap.add_argument("--tune-images", type=int, default=16, help="Train400 images for tuning NLM's h")
    ap.add_argument("--limit", type=int, default=None, help="first N test images only (a quick check)")
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D (the slow one)")
    ap.add_argument("--json", help="also write every per-image score here")
    ap.add_argument("--write", help="put the table into this Markdown file (e.g. BENCHMARKS.md)")
    args = ap.parse_args()

    from denoiser.bench import machine
    from denoiser.inference import Denoiser

    test_dir, tune_dir = Path(args.datasets) / "Set12", Path(args.datasets) / "Train400"
    for d in (test_dir, tune_dir):
        if not d.is_dir():
            raise SystemExit(f"{d} not found: pass --datasets pointing at the folder that holds Set12/ and Train400/")
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        raise SystemExit(f"model not found: {', '.join(missing)} (train them with scripts/train_default.py, or pass --models)")
    t0 = time.time()
    methods: dict[str, Callable[[int], Callable[[np.ndarray], np.ndarray]]] = {}
    for m in args.models:
        dn = Denoiser.load(m)
        methods[f"ours: {Path(m).stem} ({dn.backend.describe()})"] = lambda s, dn=dn: dn.denoise_array
    nlm_h = {}
    for s in args.sigmas:
        nlm_h[str(s)], tuned = tune_nlm(str(tune_dir), s, args.tune_images)
        print(f"NLM sigma {s}: h = {nlm_h[str(s)]:.1f} ({tuned:.2f} dB on the tuning images)", flush=True)
    methods["OpenCV NLM (h tuned per sigma)"] = lambda s: nlm(nlm_h[str(s)])
    if not args.no_bm3d:
        methods["BM3D"] = bm3d

    results: dict[str, dict[int, dict]] = {}
    for name, make in methods.items():
        results[name] = {}
        for s in args.sigmas:
            r = evaluate_fn(make(s), test_dir, s, seed=0, limit=args.limit)
            results[name][s] = r
            print(f"{name} sigma {s}: {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, "
                  f"{r['seconds_per_megapixel']:.2f} s/MP", flush=True)
    mach = machine()
    meta = {"images": results[next(iter(results))][args.sigmas[0]]["images"],
            "machine": f"{mach['cpu']}, {mach['cores']} cores",
            "date": date.today().isoformat(), "minutes": (time.time() - t0) / 60, "nlm_h": nlm_h,
            "tune_images": args.tune_images,
            "command": "python scripts/bench_quality.py " + " ".join(sys.argv[1:])}
    text = table(results, args.sigmas, meta)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    if args.write:
        write_section(Path(args.write), text)
        print(f"wrote the table into {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
