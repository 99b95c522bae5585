"""Watching a training run: terminal progress bar, metrics file, previews, TensorBoard.

(Following a run live from another thread and stopping it is the app's `TrainingJob`.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

Callback = Callable[[dict], "bool | None"]  # gets each metrics record; returning True asks to stop


class Progress:
    """A one-line progress bar on stderr (rewritten in place on a TTY, plain lines otherwise)."""

    def __init__(self, total: int, first: int, enabled: bool):
        self.total, self.first, self.enabled = total, first, enabled
        self.tty = sys.stderr.isatty()
        self.start = time.time()

    def update(self, step: int, rec: dict) -> None:
        if not self.enabled:
            return
        done = step - self.first
        eta = (time.time() - self.start) / max(1, done) * (self.total - step)
        width = 24
        filled = int(width * step / max(1, self.total))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} loss {rec['loss']:.4f} "
                f"lr {rec['lr']:.2e} {rec['images_per_s']:.1f} img/s ETA {eta / 60:.1f} min")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            print(("\n" if self.tty else "") + text, file=sys.stderr, flush=True)


class MetricsLog:
    """metrics.jsonl (one JSON object per record, flushed at once so a UI can tail it) and,
    optionally, TensorBoard scalars."""

    def __init__(self, run_dir: Path | None, tensorboard: bool, callback: Callback | None):
        self.file = (run_dir / "metrics.jsonl").open("a") if run_dir else None
        self.callback = callback
        self.tb = None
        if tensorboard and run_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, rec: dict) -> bool:
        """Record it; return True if the callback asked to stop."""
        if self.file:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()
        if self.tb:
            for k, v in rec.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, rec["step"])
        return bool(self.callback(rec)) if self.callback else False

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


def save_preview(path: Path, noisy: torch.Tensor, output: torch.Tensor, clean: torch.Tensor) -> Path:
    """A PNG grid: one row per crop, columns noisy | output | clean."""
    from denoiser.core.imageio import ImageInfo, write_image

    rows = [torch.cat([n, o, c], dim=2) for n, o, c in zip(noisy, output, clean)]
    grid = torch.cat(rows, dim=1).clamp(0, 1).float().cpu().numpy().transpose(1, 2, 0)
    return write_image(path, np.ascontiguousarray(grid), ImageInfo(gray=grid.shape[2] == 1))


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return records
