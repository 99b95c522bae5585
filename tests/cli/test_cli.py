import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from denoiser.cli.main import main

FORMATS = ["png", "jpg", "tif", "bmp", "webp"]


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, ext in enumerate(FORMATS):
        Image.fromarray(rng.integers(0, 255, (33, 47, 3), dtype=np.uint8)).save(src / f"img{i}.{ext}")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(src / "sub" / "gray.png")
    return src


def test_denoise_folder_writes_each_output_under_its_name(tiny_checkpoint, inputs, tmp_path):
    out = tmp_path / "out"
    rc = main(["denoise", str(inputs), "-o", str(out), "--model", str(tiny_checkpoint), "--report",
               str(tmp_path / "r.json")])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"img{i}.{e}" for i, e in enumerate(FORMATS))
    for i, ext in enumerate(FORMATS):
        with Image.open(out / f"img{i}.{ext}") as im:
            assert im.size == (47, 33)
    assert len(json.loads((tmp_path / "r.json").read_text())["files"]) == 5


def test_recursive_mirrors_tree_and_files_work_too(tiny_checkpoint, inputs, tmp_path):
    out = tmp_path / "out"
    assert main(["denoise", str(inputs), "-r", "-o", str(out), "--model", str(tiny_checkpoint)]) == 0
    with Image.open(out / "sub" / "gray.png") as im:
        assert im.mode == "L"
    assert main(["denoise", str(inputs / "img0.png"), "-o", str(tmp_path / "one"), "--model",
                 str(tiny_checkpoint)]) == 0
    assert (tmp_path / "one" / "img0.png").exists()


def test_bad_file_is_reported_and_the_rest_processed(tiny_checkpoint, inputs, tmp_path, capsys):
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    rc = main(["denoise", str(inputs), "-o", str(out), "--model", str(tiny_checkpoint)])
    assert rc == 1
    assert len(list(out.iterdir())) == 5
    assert "broken.png" in capsys.readouterr().err


def test_never_overwrites_inputs(tiny_checkpoint, inputs):
    before = (inputs / "img0.png").read_bytes()
    assert main(["denoise", str(inputs), "-o", str(inputs), "--model", str(tiny_checkpoint)]) == 2
    assert (inputs / "img0.png").read_bytes() == before
    assert main(["denoise", str(inputs), "-o", str(inputs), "--suffix", "_dn", "--model", str(tiny_checkpoint)]) == 0
    assert (inputs / "img0_dn.png").exists() and (inputs / "img0.png").read_bytes() == before


def test_existing_outputs_need_a_decision(tiny_checkpoint, inputs, tmp_path):
    out = tmp_path / "out"
    args = ["denoise", str(inputs / "img0.png"), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert main(args) == 0
    assert main(args) == 1
    assert main(args + ["--skip-existing"]) == 0
    assert main(args + ["--overwrite"]) == 0


@pytest.fixture
def flat_dir(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    Image.fromarray(np.full((32, 32), 120, np.uint8), "L").save(clean / "flat.png")
    return clean


def test_eval_prints_json(tiny_checkpoint, flat_dir, capsys):
    clean = flat_dir
    assert main(["eval", "--model", str(tiny_checkpoint), "--clean", str(clean), "--sigma", "25"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 1 and result["sigma"] == 25 and 18 < result["psnr_noisy"] < 23


def test_eval_at_sigma_0_prints_strict_json(tiny_checkpoint, flat_dir, capsys):
    """The noisy input is the clean image: its PSNR is infinite, which JSON cannot hold."""
    assert main(["eval", "--model", str(tiny_checkpoint), "--clean", str(flat_dir), "--sigma", "0", "--per-image"]) == 0

    def refuse(name):
        raise AssertionError(f"{name} in the JSON")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["psnr_noisy"] is None and result["psnr_gain"] is None and result["ssim_noisy"] == 1.0
    assert result["per_image"][0]["psnr_noisy"] is None and result["psnr"] > 20


def test_eval_takes_a_noise_spec_and_rejects_a_bad_one(tiny_checkpoint, flat_dir, capsys):
    clean = flat_dir
    assert main(["eval", "--model", str(tiny_checkpoint), "--clean", str(clean), "--noise", "camera"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "sigma" not in result and result["noise"].startswith("camera:iso=")  # canonical form
    with pytest.raises(SystemExit):
        main(["eval", "--model", str(tiny_checkpoint), "--clean", str(clean), "--noise", "gausian:25"])
    assert "gausian" in capsys.readouterr().err


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "denoiser", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("denoise", "train", "export", "eval"):
        assert cmd in out.stdout


def test_import_is_light():
    code = ("import sys, denoiser; heavy = {'gradio', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', 'torch'}"
            " & {m.split('.')[0] for m in sys.modules}; print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_of_the_shipped_data_folder_skips_the_noisy_sample(tiny_checkpoint, tmp_path, capsys):
    import shutil

    from tests.conftest import DATA

    clean = tmp_path / "data"
    shutil.copytree(DATA, clean)  # as shipped: three clean photos and noisy_astronaut.png
    assert main(["eval", "--model", str(tiny_checkpoint), "--clean", str(clean), "--per-image"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["images"] == 3 and "noisy_astronaut.png" not in {r["image"] for r in result["per_image"]}
    assert result["skipped"] == [{"image": "noisy_astronaut.png", "reason": "named as noisy, not clean"}]
    assert "skipped noisy_astronaut.png: named as noisy, not clean" in captured.err
