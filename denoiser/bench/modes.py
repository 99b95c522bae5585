"""`denoiser bench --compare`: our quality modes beside Open Image Denoise and FFDNet on this
CPU, in one run, against the machine's theoretical peak.

Rows: ours in each quality mode (fast = INT8, balanced = FP32, high = x8 self-ensemble), what
`Denoiser.load(model, quality=...)` gives a user (tiles planned from the memory budget, not a
fixed size); Open Image Denoise (RT filter, its fast and high qualities); FFDNet (published
weights, PyTorch, told sigma 25). Every row is its own process, run in turns (bench.rows),
so ratios are fair on a shared machine. Ratios are against our balanced (FP32) row.

Peak: cores x FMA lanes x 2 x clock (cpu_features.peak). Our rows say how close they get:
the model's multiply-adds per pixel x 2 x pixels / seconds (x8 for high), against the FP32 peak
(balanced, high) or the INT8 peak (fast). Tile margins are work too, but not useful work: they
count against the row, as decode-free end-to-end time would.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from denoiser.bench.peers import OIDN_QUALITIES, PEERS, missing
from denoiser.bench.rows import machine, run_rows
from denoiser.run.quality import QUALITIES

COMPARE_SIZES = ("1000x1000", "4000x3000")  # 1 MP and a 12 MP photo
MODES = QUALITIES
PEER_NAMES = (*(f"oidn-{q}" for q in OIDN_QUALITIES), "ffdnet")  # a peer and its quality, as --peers takes them
PEER_ROWS = ("oidn-fast", "oidn-high", "ffdnet")


def specs_for(checkpoint: Path, size: str, modes, peers, threads: int) -> tuple[list[dict], list[dict]]:
    """(row specs to run, rows skipped with a note) for one size."""
    specs, skipped = [], []
    for m in modes:
        specs.append({"backend": "ours", "precision": {"fast": "int8", "high": "fp32 x8"}.get(m, "fp32"),
                      "quality": m, "size": size, "device": "cpu", "artifact": str(checkpoint), "threads": threads})
    for p in peers:
        name, _, quality = p.partition("-")
        base = {"backend": name, "precision": quality or "fp32", "size": size, "device": "cpu"}
        note = missing(name) if name in PEERS else f"unknown peer {p!r}"
        if note:
            skipped.append({**base, "skipped": note})
        else:
            specs.append({**base, "artifact": "", "threads": threads})
    return specs, skipped


def compare(checkpoint: str | Path, sizes=COMPARE_SIZES, modes=MODES, peers=PEER_ROWS, repeat: int = 3,
            warmup: int = 1, threads: int = 0, log=print) -> dict:
    from denoiser.core.checkpoint import load_checkpoint
    from denoiser.core.nets import macs_per_pixel
    from denoiser.deploy.cpu_features import peak
    from denoiser.run.inference import Denoiser

    checkpoint = Path(checkpoint)
    threads = threads or len(os.sched_getaffinity(0))
    macs = macs_per_pixel(load_checkpoint(checkpoint)[0])
    for m in modes:  # exports (FP32, INT8) are made once here, not inside a timed row's process
        Denoiser.load(checkpoint, quality=m)
    top = peak()
    rows = []
    with tempfile.TemporaryDirectory(prefix="denoiser-bench-") as tmp:
        for size in sizes:
            specs, skipped = specs_for(checkpoint, size, modes, peers, threads)
            log(f"{size}: {len(specs)} rows in turns, {warmup} warm-up + {repeat} timed runs each ...")
            rows += run_rows(specs, warmup, repeat, Path(tmp)) + skipped
    for row in rows:
        ref = next((r for r in rows if r.get("quality") == "balanced" and r["size"] == row["size"] and "ms" in r), None)
        if ref and "ms" in row:
            row["vs_ours_fp32"] = round(ref["ms"] / row["ms"], 2)
        if row.get("quality") and "ms" in row:
            w, h = (int(v) for v in row["size"].split("x"))
            ops = 2 * macs * w * h * (8 if row["quality"] == "high" else 1)
            rate = ops / (row["ms"] / 1000) / 1e9
            bound = top.int8_gops if row["quality"] == "fast" else top.fp32_gflops
            row["useful_gops"], row["of_peak"] = round(rate, 1), round(rate / bound, 3) if bound else None
    return {"machine": machine(), "model": str(checkpoint), "macs_per_pixel": macs, "threads": threads,
            "repeat": repeat, "warmup": warmup, "rows": rows,
            "peak": {"cores": top.cores, "ghz": top.ghz, "isa": top.isa, "fp32_lanes_per_core": top.fp32_lanes,
                     "int8_macs_per_core": top.int8_macs, "fp32_gflops": round(top.fp32_gflops, 1),
                     "int8_gops": round(top.int8_gops, 1)}}


def to_markdown(result: dict) -> str:
    m, p = result["machine"], result["peak"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores / {m['threads']} threads; onnxruntime {m['onnxruntime']}, "
             f"torch {m['torch']}",
             f"Theoretical peak: {p['cores']} cores x {p['fp32_lanes_per_core']} FP32 FMA lanes x 2 x {p['ghz']} GHz "
             f"= **{p['fp32_gflops']} GFLOP/s FP32**; INT8 ({p['isa']}): {p['cores']} x {p['int8_macs_per_core']} "
             f"multiply-adds x 2 x {p['ghz']} GHz = **{p['int8_gops']} GOP/s**",
             f"Model: `{result['model']}`, {result['macs_per_pixel'] / 1e3:.1f} k multiply-adds per pixel; "
             f"{result['threads']} threads; median of {result['repeat']} runs after {result['warmup']} warm-up, "
             "rows in turns", "",
             "| row | size | s / image | MP/s | vs ours FP32 | useful GOP/s | of peak | tiles | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        name = f"ours {r['quality']} ({r['precision']})" if r.get("quality") else f"{r['backend']} {r['precision']}"
        if "skipped" in r or "error" in r:
            lines.append(f"| {name} | {r['size']} | {'skipped' if 'skipped' in r else 'error'}: "
                         f"{r.get('skipped') or r.get('error')} | | | | | | |")
            continue
        tiles = f"{r['tile']} px, margin {r['margin']}" if r.get("tile") else "whole image"
        of_peak = f"{100 * r['of_peak']:.0f} %" if r.get("of_peak") is not None else ""
        lines.append(f"| {name} | {r['size']} | {r['ms'] / 1000:.2f} | {r['mp_per_s']:.3f} | "
                     f"{r.get('vs_ours_fp32', '')} | {r.get('useful_gops', '')} | {of_peak} | {tiles} | "
                     f"{r['peak_rss_mb']} |")
    return "\n".join(lines) + "\n"
