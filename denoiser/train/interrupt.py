"""Ctrl-C and SIGTERM during training: finish the step, save a snapshot, say where, exit non-zero.

The first signal only sets a flag that the training loop reads after each step (and every DDP
rank agrees on), so the snapshot it then writes is a consistent one. A second signal stops at
once (KeyboardInterrupt), for a user who cannot wait for the step to end.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving `snapshot` at `step`."""

    def __init__(self, snapshot: Path, step: int, signum: int):
        self.snapshot, self.step, self.signum = snapshot, step, signum
        super().__init__(f"interrupted at step {step}: snapshot saved to {snapshot}")

    @property
    def exit_code(self) -> int:  # the shell's convention for a process ended by a signal
        return 128 + self.signum


class StopOnSignal:
    """`with StopOnSignal() as stop:` ... `stop.requested` (None, or the signal's number).

    Handlers can only be installed in the main thread; elsewhere (the app's training thread)
    this does nothing, and the app stops runs its own way.
    """

    def __init__(self):
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
