"""A training run in a background thread, for the app's train tab: follow its records live,
stop it cleanly (the current step ends, a snapshot and the final model are written).
"""

from __future__ import annotations

import threading
from pathlib import Path

from denoiser.train.trainer import train


class TrainingJob:
    """Run `train` in a background thread; follow its records live and stop it cleanly.

        job = TrainingJob(cfg, "runs/mine").start()
        job.records        # every metrics record so far
        job.stop()         # finishes the current step, writes a snapshot and the final model
        job.wait()         # -> path of the final checkpoint (or raises the training error)
    """

    def __init__(self, cfg, run_dir: str | Path, init: str | None = None, resume: bool = False):
        self.cfg, self.run_dir, self.init, self.resume = cfg, Path(run_dir), init, resume
        self.records: list[dict] = []
        self.result: Path | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="denoiser-train")

    def _on_record(self, rec: dict) -> bool:
        self.records.append(rec)
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            self.result = train(self.cfg, self.run_dir, resume=self.resume, init=self.init,
                                callback=self._on_record, progress=False)
        except BaseException as e:  # handed to whoever waits on the job
            self.error = e

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> Path | None:
        self._thread.join(timeout)
        if self.error:
            raise self.error
        return self.result
