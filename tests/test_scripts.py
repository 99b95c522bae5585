"""The committed scripts that make the shipped models and the quality table, run end to end on
tiny stand-ins for ../shared/datasets (tests never depend on ../shared)."""

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from denoiser.checkpoint import load_checkpoint, read_metadata
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


def test_bench_quality_writes_one_table_section(tiny_checkpoint, datasets, tmp_path):
    md = tmp_path / "BENCH.md"
    md.write_text("# Benchmarks\n\nearlier text\n")
    args = [str(REPO / "scripts/bench_quality.py"), "--datasets", str(datasets), "--models", str(tiny_checkpoint),
            "--sigmas", "25", "50", "--tune-images", "2", "--json", str(tmp_path / "q.json"), "--write", str(md)]
    run(*args)
    run(*args)  # a second run replaces the section instead of appending another
    doc = md.read_text()
    assert doc.startswith("# Benchmarks\n\nearlier text") and doc.count("bench_quality:start") == 1
    result = json.loads((tmp_path / "q.json").read_text())["results"]
    assert len(result) == 3 and any(name.startswith("ours: ") for name in result)
    bm3d, nlm = result["BM3D"], result["OpenCV NLM (h tuned per sigma)"]
    for s in ("25", "50"):
        # both classics really denoise the protocol's noisy inputs
        assert bm3d[s]["psnr"] > bm3d[s]["psnr_noisy"] + 2 and nlm[s]["psnr"] > nlm[s]["psnr_noisy"] + 1
        assert bm3d[s]["images"] == 2
    for name in result:
        assert f"| {name} |" in doc
    assert "*DRUNet (published)*" in doc and "h=" in doc


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
    assert 3.0 <= first["elapsed_s"] < 60
    out = run(str(REPO / "scripts/train_default.py"), *common, "--resume", "--leg", "2s")
    second = read_metadata(tmp_path / "run" / "last.safetensors")
    assert "leg over" in out and second["step"] > first["step"]
    assert second["elapsed_s"] >= first["elapsed_s"] + 2.0  # the time spent adds up over legs
    assert second["run"]["train"]["time_budget_s"] == 3600.0


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
