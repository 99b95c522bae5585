"""Which noise mix to train on: fork one run into one copy per mix, train them side by side, score.

    python scripts/study_mix.py --run runs/default-v2-color --datasets ../shared/datasets --leg 45m \
        --mix old="gaussian:0-75@3|camera-v1" new="gaussian:0-75@3|camera" more="gaussian:0-75|camera"

Each fork is a copy of the run folder (weights, optimizer, EMA, schedule position and data
order) whose config.json names another noise spec; all forks then continue at once, one thread
each, for the same CPU time (each process counts its own), see the same crops and differ
only in their noise. Afterwards each is scored (scripts/score_models.py: Set12 sigma 15/25/50
and the real SIDD12 pairs; development sets, never trained on). The winning fork's folder can
continue as the run itself. Prints the Markdown table BENCHMARKS.md records.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def fork(run: Path, name: str, spec: str) -> Path:
    """A copy of `run` that trains on `spec` from its last snapshot on."""
    from denoiser.core.noise.spec import parse_noise_spec

    spec = parse_noise_spec(spec).spec  # canonical, as runs record it; a bad spec fails before the copy
    dst = run.parent / f"{run.name}-mix-{name}"
    if dst.exists():
        raise SystemExit(f"{dst} exists: remove it or pick another mix name")
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("previews", "*.out"))
    cfg_path = dst / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["noise"]["spec"] = spec
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="run folder with a last.safetensors snapshot")
    ap.add_argument("--recipe", default="v2-color", help="scripts/train_default.py --model of that run")
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--mix", nargs="+", required=True, metavar="NAME=SPEC", help="one fork per NAME=SPEC")
    ap.add_argument("--leg", default="45m", help="CPU time every fork trains for (each counts its own, so "
                                                 "forks get equal training however loaded the machine is)")
    args = ap.parse_args(argv)
    if not (args.run / "last.safetensors").is_file():
        raise SystemExit(f"no snapshot to fork: {args.run / 'last.safetensors'}")
    mixes = dict(m.split("=", 1) for m in args.mix)
    forks = [fork(args.run, name, spec) for name, spec in mixes.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train_default.py"), "--model", args.recipe,
                               "--run", str(f), "--datasets", str(args.datasets), "--threads", "1", "--resume",
                               "--leg", args.leg, "--leg-clock", "cpu"], stdout=open(f / "train.out", "w"), stderr=subprocess.STDOUT,
                              env=env)
             for f in forks]
    failed = [str(f) for f, p in zip(forks, procs) if p.wait() != 0]
    if failed:
        raise SystemExit(f"training failed in: {', '.join(failed)} (see train.out there)")
    from score_models import HEADER, score_row

    print(HEADER.replace("| model |", "| mix |"))
    for (name, spec), f in zip(mixes.items(), forks):
        print(score_row(f / "model.safetensors", args.datasets, name=f"{name}: `{spec}`"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
