"""Load on a live `app.py`, loopback only and bounded in count and time: many /denoise callers
at once all succeed with the server's memory bounded; hostile batches cannot keep a small
/denoise waiting, and stop when their callers leave. These are scripts/load_test.py's own
functions (BENCHMARKS.md has its full-size numbers), at a small scale and the tiny model."""

import importlib.util

import numpy as np
import pytest
from conftest import REPO

CALLS = 16
HOSTILE_IMAGES = 600  # solid 1000x1000 PNGs per hostile batch: minutes of work for the tiny model
MEMORY_GROWTH_MB = 400  # what 16 callers of 0.1-0.2 MP may add to the server (2 run at once)


def load_script():
    spec = importlib.util.spec_from_file_location("load_test", REPO / "scripts" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    load = load_script()
    work = tmp_path_factory.mktemp("load")
    proc, url = load.start_app(tiny_checkpoint, work, "--batch-max-mp", str(HOSTILE_IMAGES + 10),
                               "--batch-max-seconds", "120")  # bounds a failing run of the hostile test
    yield load, proc, url, work
    proc.terminate()
    proc.wait(30)


def test_concurrent_denoise_calls_all_succeed_with_the_servers_memory_bounded(server):
    load, proc, url, work = server
    images = [load.noisy_image(work / f"in_{k:02d}.png", mp, k) for k, mp in enumerate(np.linspace(0.1, 0.2, CALLS))]
    r = load.denoise_load(url, proc.pid, images)
    print(r)
    assert r["ok"] == CALLS, r["errors"]
    assert r["rss_peak_mb"] - r["rss_before_mb"] < MEMORY_GROWTH_MB


def test_hostile_batches_cannot_hold_up_a_small_denoise_and_stop_when_their_callers_leave(server):
    load, proc, url, work = server
    hostile = load.solid_zip(work / "hostile.zip", HOSTILE_IMAGES)
    r = load.hostile_probe(url, proc.pid, hostile, load.noisy_image(work / "small.png", 0.06, 99))
    print(r)
    assert r["small_denoise_ok"], r["small_denoise_error"]
    assert r["batches_finished_before_it"] == 0  # both batches were still there while it ran
    assert r["small_denoise_beside_batches_s"] < 15  # not behind them (each has minutes of work)
    # The callers left: the running batch stops and the queued one is dropped, so the next
    # caller's batch runs within Gradio's disconnect check (up to about 10 s) plus one image,
    # and then the server idles: no batch goes on without its caller.
    assert r["next_batch_after_callers_left_s"] < 40 and "1 denoised" in r["next_batch_summary"]
    assert r["server_cpu_after_callers_left"] < 0.3  # cores busy; a batch running on keeps 1-2 busy
