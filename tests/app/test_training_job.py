"""TrainingJob: a real (tiny) training run in a background thread, followed live, stopped cleanly,
and its errors handed to whoever waits on it."""

import time

import pytest
from conftest import tiny_run_config

from denoiser.app.training_job import TrainingJob
from denoiser.core.checkpoint import read_metadata
from denoiser.train.monitor import read_metrics


def test_training_job_follows_live_and_stops_cleanly(tmp_path):
    job = TrainingJob(tiny_run_config(steps=100000), tmp_path).start()
    deadline = time.time() + 60
    while time.time() < deadline and not any("loss" in r for r in job.records):
        time.sleep(0.05)
    assert job.running
    job.stop()
    final = job.wait(60)
    assert not job.running and final.exists()
    step = read_metadata(final)["step"]
    assert 0 < step < 100000 and read_metadata(tmp_path / "last.safetensors")["step"] == step
    assert job.records == read_metrics(tmp_path)  # live records are the file's, in order
    assert job.records[0]["step"] == 0 and "val_psnr" in job.records[0]


def test_a_job_runs_to_its_end_and_a_second_fine_tunes_its_model(tmp_path):
    first = TrainingJob(tiny_run_config(steps=4), tmp_path / "a").start()
    final = first.wait(120)
    assert read_metadata(final)["step"] == 4 and not first.running
    assert [r["step"] for r in first.records if "loss" in r] == [2, 4]
    assert [r["step"] for r in first.records if "val_psnr" in r] == [0, 4]
    second = TrainingJob(tiny_run_config(steps=2), tmp_path / "b", init=str(final)).start()
    tuned = read_metadata(second.wait(120))
    assert tuned["step"] == 2 and tuned["init"]["path"] == str(final)
    # its baseline is the first job's model measured on the second run's validation set
    assert second.records[0]["step"] == 0 and second.records[0]["val_psnr"] > 0


def test_a_failing_job_raises_its_error_to_whoever_waits(tmp_path):
    job = TrainingJob(tiny_run_config(), tmp_path / "empty", resume=True).start()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        job.wait(60)
    assert not job.running and job.result is None
