"""Train the v2 default models on a lent GPU for one device call, then carry them back.

A session whose task is lent a GPU (the device tool's `status`) has about 15 minutes of it;
one GPU minute trains these models about as much as an hour of this CPU. Three steps:

    python scripts/gpu_leg.py send                 # here: pack the runs into the tree, stage data
    # device run, carry [".device/datasets"], timeout_s 600, the command `send` prints:
    python3 scripts/gpu_leg.py train --minutes 7   # there: both models side by side on the GPU
    python scripts/gpu_leg.py receive FILES_AT     # here: the trained weights back into runs/

What travels: the tree (with checkpoints/wip/default-v2-*/, packed in float16 by `send`) and
.device/datasets (CBSD432, and Train400 while it fits under the 64 MiB a call carries). On the
device each run is a copy of its wip folder whose config says cuda, bf16, channels-last, a
GPU-sized batch and the staged data; only the weights and metrics come back, so the run's own
config (CPU, one thread, ../shared/datasets) stays as it was. The device has PyTorch, safetensors,
Pillow and OpenCV; nothing is installed there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

RUNS = ("v2-color", "v2-gray")
CARRY_LIMIT = 60 * 2**20  # the device tool carries 64 MiB per call: keep some room
GPU_BATCH = 48  # crops of 128 px per step on the GPU (7 on the CPU)


def tree_bytes(root: Path) -> int:
    """What a device call sends besides `carry`: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                         capture_output=True, check=True).stdout
    return sum((root / p).stat().st_size for p in out.decode().split("\0") if p and (root / p).is_file())


def send(root: Path, datasets: Path, runs: Path) -> list[str]:
    """Pack each run into checkpoints/wip/ (float16) and stage the data; returns the folders staged."""
    from denoiser.train.snapshot import pack_snapshot

    for name in RUNS:
        run, wip = runs / f"default-{name}", root / "checkpoints" / "wip" / f"default-{name}"
        if not (run / "last.safetensors").is_file():
            raise SystemExit(f"{run / 'last.safetensors'} not found: copy checkpoints/wip/default-{name} to {runs}/ "
                             "or train a leg first")
        wip.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "metrics.jsonl"):
            shutil.copyfile(run / f, wip / f)
        pack_snapshot(run / "last.safetensors", wip / "last.safetensors", half=True)
    staged = root / ".device" / "datasets"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    folders = []
    for folder in ("CBSD432", "Train400"):  # colour first: the gray run reads CBSD432 as gray too
        size = sum(p.stat().st_size for p in (datasets / folder).iterdir())
        if tree_bytes(root) + _bytes(staged) + size > CARRY_LIMIT:
            print(f"{folder} left out: it would take the call over {CARRY_LIMIT >> 20} MiB")
            continue
        shutil.copytree(datasets / folder, staged / folder)
        folders.append(folder)
    if not folders:
        raise SystemExit("no dataset fits in one device call beside the tree")
    return folders


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def device_config(saved: dict, data_root: Path, folders: list[str], device: str, batch: int) -> dict:
    """The run's config as the GPU leg trains it: staged data, the device, bf16, a bigger batch."""
    cfg = json.loads(json.dumps(saved))
    cfg["data"].update(clean_dirs=[str(data_root / f) for f in folders], clean_weights=[], batch_size=batch,
                       num_workers=4 if device.startswith("cuda") else 0)
    cfg["train"].update(device=device, amp="auto", channels_last=device.startswith("cuda"), threads=0)
    return cfg


def train_legs(root: Path, out: Path, minutes: float, device: str, batch: int, work: Path) -> None:
    """On the device: train every run side by side for `minutes`, then pack each into `out`."""
    from denoiser.train.snapshot import pack_snapshot

    data_root = root / ".device" / "datasets"
    folders = sorted(p.name for p in data_root.iterdir() if p.is_dir())
    procs = {}
    for name in RUNS:
        run = work / f"default-{name}"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(root / "checkpoints" / "wip" / f"default-{name}", run)
        cfg = device_config(json.loads((run / "config.json").read_text()), data_root, folders, device, batch)
        (run / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        procs[name] = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "train_default.py"), "--model", name, "--run", str(run),
             "--resume", "--leg", f"{minutes * 60:.0f}s", "--install-as", ""],
            stdout=open(out / f"{name}.log", "w"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    t0 = time.time()
    failed = [name for name, p in procs.items() if p.wait() != 0]
    print(f"legs done in {(time.time() - t0) / 60:.1f} min", flush=True)
    for name in RUNS:
        if name in failed:
            print(f"{name}: training failed, see {name}.log")
            continue
        run = work / f"default-{name}"
        pack_snapshot(run / "last.safetensors", out / f"{name}.safetensors", half=True)
        shutil.copyfile(run / "metrics.jsonl", out / f"{name}.metrics.jsonl")
        print(f"{name}: packed", flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def receive(root: Path, files: Path, runs: Path) -> None:
    """Put what a GPU leg sent back into runs/ and checkpoints/wip/ (their config.json stays)."""
    from denoiser.core.checkpoint import read_checkpoint_meta

    for name in RUNS:
        weights, metrics = files / f"{name}.safetensors", files / f"{name}.metrics.jsonl"
        if not weights.is_file():
            print(f"{name}: nothing came back ({weights.name} missing)")
            continue
        meta = read_checkpoint_meta(weights)
        for dst in (runs / f"default-{name}", root / "checkpoints" / "wip" / f"default-{name}"):
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(weights, dst / "last.safetensors")
            shutil.copyfile(metrics, dst / "metrics.jsonl")
        print(f"{name}: step {meta.step}, {meta.pixels_seen / 1e9:.2f} G pixels seen")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="pack the runs into checkpoints/wip (float16) and stage .device/datasets")
    s.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    s.add_argument("--runs", type=Path, default=ROOT / "runs")
    t = sub.add_parser("train", help="on the device: train both runs side by side, pack them into $OUT")
    t.add_argument("--minutes", type=float, default=7.0, help="wall minutes of training (default 7)")
    t.add_argument("--device", default="cuda")
    t.add_argument("--batch", type=int, default=GPU_BATCH)
    t.add_argument("--out", type=Path, default=None, help="default: $OUT")
    t.add_argument("--work", type=Path, default=Path("/tmp/gpu-legs"))
    r = sub.add_parser("receive", help="take the packed weights back from the device's files")
    r.add_argument("files", type=Path, help="the folder the device call's files landed in (files_at)")
    r.add_argument("--runs", type=Path, default=ROOT / "runs")
    args = ap.parse_args(argv)
    if args.cmd == "send":
        folders = send(ROOT, args.datasets, args.runs)
        total = tree_bytes(ROOT) + _bytes(ROOT / ".device" / "datasets")
        print(f"staged {', '.join(folders)}; the call carries {total / 2**20:.1f} MiB. Device call:\n"
              f'  carry [".device/datasets"], timeout_s 600, command:\n'
              f"  PYTHONUNBUFFERED=1 python3 scripts/gpu_leg.py train --minutes 7")
    elif args.cmd == "train":
        out = args.out or Path(os.environ.get("OUT", "out"))
        out.mkdir(parents=True, exist_ok=True)
        args.work.mkdir(parents=True, exist_ok=True)
        train_legs(ROOT, out, args.minutes, args.device, args.batch, args.work)
    else:
        if not args.files.is_dir():
            raise SystemExit(f"not a folder: {args.files}")
        receive(ROOT, args.files, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
