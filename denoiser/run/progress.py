"""Tile progress of the image being denoised, on one self-overwriting terminal line.

A batch prints a line per file; one large photo takes minutes on a CPU, so within an image
the tiles done, the tiles in all and the speed so far (MP/s) are shown too. Only on a
terminal: a log file or a pipe gets the per-file lines alone, with no carriage returns.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

CLEAR = "\r\033[K"  # back to the line's start and erase it


class TileLine:
    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.2):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self.shown = False
        self._t0 = self._last = 0.0

    def __call__(self, src: Path, done: int, total: int, megapixels: float) -> None:
        """A `batch.TileProgress`: called with done = 0 when an image starts, then after each call."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if done == 0:
            self._t0, self._last = now, 0.0
            return
        if done < total and now - self._last < self.interval_s:
            return  # the terminal needs no more than a few updates a second
        self._last = now
        rate = megapixels * done / total / max(now - self._t0, 1e-9)
        self.stream.write(f"{CLEAR}  {Path(src).name}: tiles {done}/{total} ({100 * done // total}%), "
                          f"{rate:.2f} MP/s")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the line before other output is printed."""
        if self.shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.shown = False
