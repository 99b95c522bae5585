"""Time ONNX files side by side, in turns, in one process: a Markdown table of the fastest run
of each and its ratio to the first file.

    python scripts/compare_onnx.py before-int8.onnx after-int8.onnx model.onnx --size 512x512 --threads 1

For an A/B of two exports of one checkpoint (two commits' INT8 files, FP32 against INT8): every
round runs each file once on the same random image, so a busy machine slows them alike and the
ratios stay readable when absolute times do not. The input's channels come from each file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from denoiser.core.config import parse_wh  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="ONNX files (the first is the reference of the ratios)")
    ap.add_argument("--size", type=parse_wh, default=(512, 512), help="WxH of the input (default 512x512)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up (default 5)")
    args = ap.parse_args()
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"not found: {', '.join(missing)}")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sessions = [ort.InferenceSession(f, opts, providers=["CPUExecutionProvider"]) for f in args.files]
    w, h = args.size
    rng = np.random.default_rng(0)
    feeds = []
    for s in sessions:
        inp = s.get_inputs()[0]
        channels = inp.shape[1] if isinstance(inp.shape[1], int) else 3
        feeds.append({inp.name: rng.random((1, channels, h, w), dtype=np.float32)})
    times: list[list[float]] = [[] for _ in sessions]
    for rnd in range(args.rounds + 1):
        for i, (s, feed) in enumerate(zip(sessions, feeds)):
            t = time.perf_counter()
            s.run(None, feed)
            if rnd:  # round 0 warms up
                times[i].append(time.perf_counter() - t)
    best = [min(t) for t in times]
    print(f"| file ({w}x{h}, {args.threads} thread(s), fastest of {args.rounds}) | ms | speed vs first |")
    print("|---|---:|---:|")
    for f, b in zip(args.files, best):
        print(f"| {f} | {1000 * b:.1f} | {best[0] / b:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
