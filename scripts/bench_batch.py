"""Images/s on a folder of 1-megapixel photos: the batch pipeline vs a naive one-at-a-time loop.

    python scripts/bench_batch.py                 # 100 images of 1000x1000 (the recorded run)
    python scripts/bench_batch.py --images 8      # a quick look

Both sides use one Denoiser (same model, same backend, loaded once) and the same files.
Naive: for each file, read, denoise, write, one after the other. Pipeline: `denoise_files`,
which decodes and encodes in threads while the backend works. The folder is processed in
rounds that alternate the two (naive on a slice, then the pipeline on the same slice), so
a machine whose load drifts (shared CPU) affects both alike. The model is the shipped default
if present, else a random-weight stand-in of its size (speed does not depend on weights).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_memory import make_photo, model_path  # noqa: E402

from denoiser.core.config import parse_wh  # noqa: E402


def naive(dn, files: list[Path], out: Path) -> None:
    from denoiser.core.imageio import read_image, write_image

    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        arr, info = read_image(f)
        write_image(out / f.name, dn.denoise_array(arr), info)


def pipeline(dn, files: list[Path], out: Path, workers: int) -> None:
    from denoiser.run.batch import BatchOptions, denoise_files

    report = denoise_files(dn, [str(f) for f in files], out, BatchOptions(workers=workers))
    assert not report.failed, report.summary()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=parse_wh, default=(1000, 1000), help="WIDTHxHEIGHT of each image")
    ap.add_argument("--ext", default="jpg", help="input and output format")
    ap.add_argument("--model", help="default: the shipped model, else a random-weight stand-in of its size")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--workers", type=int, default=2, help="pipeline decode/encode threads")
    ap.add_argument("--rounds", type=int, default=4, help="alternate naive/pipeline this many times")
    args = ap.parse_args()
    from denoiser.run.inference import Denoiser

    w, h = args.size
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        dn = Denoiser.load(model_path(args.model, work), backend=args.backend)
        files = []
        for i in range(args.images):
            files.append(work / "in" / f"{i:03d}.{args.ext}")
            files[-1].parent.mkdir(exist_ok=True)
            make_photo(files[-1], w, h, seed=i)
        dn.denoise_array(make_warmup(h, w))  # first-call setup is not what we compare
        times = {"naive": 0.0, "pipeline": 0.0}
        rounds = max(1, min(args.rounds, len(files)))
        for r in range(rounds):
            part = files[r::rounds]
            for name in ("naive", "pipeline"):
                t0 = time.perf_counter()
                if name == "naive":
                    naive(dn, part, work / name)
                else:
                    pipeline(dn, part, work / name, args.workers)
                times[name] += time.perf_counter() - t0
        assert len(list((work / "naive").iterdir())) == len(list((work / "pipeline").iterdir())) == len(files)
    mp = len(files) * w * h / 1e6
    print(f"model: {dn.describe()}")
    print(f"command: python scripts/bench_batch.py --images {args.images} --size {w}x{h} --ext {args.ext} "
          f"--backend {args.backend} --workers {args.workers} --rounds {args.rounds}")
    print("| method | images | seconds | images/s | MP/s |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {len(files)} | {t:.1f} | {len(files) / t:.3f} | {mp / t:.3f} |")
    print(f"pipeline / naive speed: {times['naive'] / times['pipeline']:.2f}x")
    return 0


def make_warmup(h: int, w: int):
    import numpy as np

    return np.random.default_rng(0).random((h, w, 3), dtype=np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
