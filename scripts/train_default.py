"""Train the shipped default colour model with the package's own trainer.

    python scripts/train_default.py --datasets ../shared/datasets --run runs/default-color

Data: CBSD432 colour photos (5 % held out by name for validation) plus 30 % procedural
dead-leaves crops; blind Gaussian noise, sigma uniform in [0, 75] on the 0-255 scale, half
of the batches clipped and rounded to 8 bits as real uploads are. Set12 is never seen here.
Afterwards it copies the final weights to checkpoints/ (use --no-install to skip).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

from denoiser.config import DataConfig, ModelConfig, NoiseConfig, RunConfig, TrainConfig
from denoiser.train import train

DEFAULT = RunConfig(
    noise=NoiseConfig(spec="gaussian:0-75", quantize_prob=0.5),
    data=DataConfig(procedural=True, procedural_weight=0.3, channels=3, crop=64, batch_size=16,
                    val_count=16, val_crop=128),
    model=ModelConfig(channels=3, width=24, levels=3, blocks_per_level=2),
    train=TrainConfig(steps=2000, lr=1e-3, warmup_steps=50, seed=0, val_interval=250, snapshot_interval=250),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="../shared/datasets", help="folder holding CBSD432/")
    ap.add_argument("--run", default="runs/default-color", help="run folder to write")
    ap.add_argument("--steps", type=int, default=DEFAULT.train.steps)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--resume", action="store_true", help="continue the run folder's last snapshot")
    ap.add_argument("--install-as", default="checkpoints/default-color.safetensors",
                    help="where to copy the final model ('' to skip)")
    args = ap.parse_args()

    cbsd = Path(args.datasets) / "CBSD432"
    if not cbsd.is_dir():
        raise SystemExit(f"{cbsd} not found: pass --datasets pointing at the folder that holds CBSD432/")
    cfg = replace(DEFAULT, data=replace(DEFAULT.data, clean_dirs=(str(cbsd),)),
                  train=replace(DEFAULT.train, steps=args.steps, device=args.device, threads=args.threads))
    t0 = time.time()
    final = train(cfg, args.run, resume=args.resume)
    print(f"trained in {(time.time() - t0) / 60:.1f} min -> {final}")
    if args.install_as:
        Path(args.install_as).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, args.install_as)
        print(f"installed as {args.install_as}")


if __name__ == "__main__":
    main()
