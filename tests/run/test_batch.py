"""The batch CLI on a matrix of bad and odd inputs, all generated here; sharding; kills."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from denoiser.cli.main import main
from denoiser.run.batch import BatchOptions, collect_inputs, denoise_files, plan
from denoiser.run.inference import Denoiser

RNG = np.random.default_rng(0)


def rgb(h=24, w=20):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def huge_png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


GOOD = ["plain.png", "gray16.png", "rgba.png", "palette.png", "rotated.jpg", "one pixel.png", "été photo №1.png",
        "rgb16.tif"]
BAD = {"cmyk.jpg": "CMYK", "corrupt.png": "not a readable image", "empty.png": "empty",
       "text.jpg": "not a readable image", "huge.png": "over the"}


@pytest.fixture
def odd_folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb()).save(d / "plain.png")
    Image.fromarray(RNG.integers(0, 65536, (18, 22), dtype=np.uint16)).save(d / "gray16.png")
    Image.fromarray(RNG.integers(0, 256, (16, 20, 4), dtype=np.uint8)).save(d / "rgba.png")
    Image.fromarray(rgb()).quantize(8).save(d / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(rgb(16, 40)).save(d / "rotated.jpg", exif=exif)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one pixel.png")
    Image.fromarray(rgb()).save(d / "été photo №1.png")
    cv2.imwrite(str(d / "rgb16.tif"), RNG.integers(0, 65536, (20, 18, 3), dtype=np.uint16))
    Image.new("CMYK", (12, 10)).save(d / "cmyk.jpg")
    (d / "corrupt.png").write_bytes((d / "plain.png").read_bytes()[:200])
    (d / "empty.png").write_bytes(b"")
    (d / "text.jpg").write_text("not an image at all\n")
    (d / "huge.png").write_bytes(huge_png())
    return d


@pytest.fixture(scope="module")
def dn(tiny_onnx):
    return Denoiser.load(tiny_onnx)


def test_odd_inputs_are_handled_and_bad_ones_reported(dn, odd_folder, tmp_path):
    out = tmp_path / "out"
    report = denoise_files(dn, [str(odd_folder)], out)
    by_name = {os.path.basename(r.input): r for r in report.results}
    assert sorted(by_name) == sorted(GOOD + list(BAD))
    for name, words in BAD.items():
        assert by_name[name].status == "failed" and words in by_name[name].reason, by_name[name]
    assert all(by_name[n].status == "ok" for n in GOOD)
    assert sorted(p.name for p in out.iterdir()) == sorted(GOOD)  # nothing else, no temp files
    with Image.open(out / "gray16.png") as im:
        assert im.mode == "I;16"
    with Image.open(out / "rgba.png") as im, Image.open(odd_folder / "rgba.png") as src:
        assert np.array_equal(np.asarray(im)[..., 3], np.asarray(src)[..., 3])
    with Image.open(out / "palette.png") as im:
        assert im.mode == "RGB"
    with Image.open(out / "rotated.jpg") as im:
        assert im.size == (16, 40) and im.getexif().get(0x0112, 1) == 1
    with Image.open(out / "one pixel.png") as im:
        assert im.size == (1, 1)
    assert cv2.imread(str(out / "rgb16.tif"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    t = report.totals()
    assert (t["files"], t["ok"], t["failed"]) == (13, 8, 5) and t["megapixels_per_s"] > 0


def test_cli_exit_code_summary_and_report(tiny_onnx, odd_folder, tmp_path, capsys):
    rc = main(["denoise", str(odd_folder), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx),
               "--report", str(tmp_path / "r.json")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "8 denoised, 0 skipped, 5 failed" in err and "MP/s" in err and "FAILED" in err and "cmyk.jpg" in err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["totals"]["failed"] == 5 and {r["status"] for r in data["files"]} == {"ok", "failed"}
    good = tmp_path / "good"
    good.mkdir()
    Image.fromarray(rgb()).save(good / "a.png")
    assert main(["denoise", str(good), "-o", str(tmp_path / "out2"), "--model", str(tiny_onnx)]) == 0


def test_read_only_output_folder_fails_each_file_cleanly(dn, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(rgb()).save(src / f"{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("permissions are not enforced here (running as root)")
        report = denoise_files(dn, [str(src)], out)
        assert [r.status for r in report.results] == ["failed"] * 3
        assert all("ermission denied" in r.reason for r in report.results)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


def test_shards_cover_every_file_exactly_once(dn, tmp_path, monkeypatch):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    names = [f"{i:02d}.png" for i in range(7)] + [f"sub/{i}.png" for i in range(4)]
    for name in names:
        Image.fromarray(rgb(8, 8)).save(src / name)
    seen = []
    for i in range(3):
        report = denoise_files(dn, [str(src)], tmp_path / "out", BatchOptions(recursive=True, shard=(i, 3)))
        assert all(r.status == "ok" for r in report.results)
        seen += [os.path.relpath(r.input, src) for r in report.results]
    assert sorted(seen) == sorted(names)  # every file once: no gaps, no repeats
    # torchrun's RANK/WORLD_SIZE shard the CLI the same way (plan is the same in every process)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    out = tmp_path / "torchrun"
    jobs = plan([str(src)], out, BatchOptions(recursive=True, shard=(1, 3)))[0]
    assert main(["denoise", str(src), "-r", "-o", str(out), "--model", str(dn.info.path)]) == 0
    written = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert written == sorted(j.dst.relative_to(out) for j in jobs) and len(written) == 4  # entries 1, 4, 7, 10


def test_output_name_clashes_and_duplicates(dn, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    Image.fromarray(rgb()).save(a / "x.png")
    Image.fromarray(rgb()).save(b / "x.png")
    report = denoise_files(dn, [str(a), str(b), str(a / "x.png")], tmp_path / "out")
    assert [r.status for r in report.results] == ["failed", "ok"]  # duplicate input counted once
    assert "same output name" in report.failed[0].reason


def test_outdir_rules(tiny_onnx, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb()).save(src / "a.jpg")
    model = ["--model", str(tiny_onnx)]
    # the input's folder without a suffix is refused, even when the format differs
    assert main(["denoise", str(src), "-o", str(src), "--format", "png", *model]) == 2
    assert not (src / "a.png").exists()
    # an output folder inside the input tree is never walked as input on the next run
    assert main(["denoise", str(src), "-r", "-o", str(src / "clean"), *model]) == 0
    assert main(["denoise", str(src), "-r", "-o", str(src / "clean"), "--skip-existing", *model]) == 0
    assert sorted(p.name for p in (src / "clean").rglob("*")) == ["a.jpg"]
    # format and quality
    assert main(["denoise", str(src / "a.jpg"), "-o", str(tmp_path / "q"), "--format", "webp",
                 "--quality", "30", *model]) == 0
    assert (tmp_path / "q" / "a.webp").exists()
    assert main(["denoise", str(src), "-o", str(tmp_path / "x"), "--skip-existing", "--overwrite", *model]) == 2


def test_globs_and_blind_model_sigma(tiny_onnx, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "notes.txt"):
        (src / name).write_bytes(b"x")
    Image.fromarray(rgb()).save(src / "a.png")
    Image.fromarray(rgb()).save(src / "b.png")
    files, errors = collect_inputs([str(src / "*"), str(tmp_path / "missing*.png")], recursive=False)
    assert [f.name for f, _ in files] == ["a.png", "b.png"] and len(errors) == 1
    assert main(["denoise", str(src / "a.png"), "-o", str(tmp_path / "o"), "--sigma", "25",
                 "--model", str(tiny_onnx)]) == 2
    assert "blind" in capsys.readouterr().err
    assert main(["denoise", str(src / "a.png"), "-o", str(tmp_path / "o"), "--max-pixels", "100",
                 "--model", str(tiny_onnx)]) == 1
    assert "over the" in capsys.readouterr().err and not (tmp_path / "o" / "a.png").exists()


def test_killed_run_leaves_no_half_written_output(tiny_onnx, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        Image.fromarray(RNG.integers(0, 256, (192, 192, 3), dtype=np.uint8)).save(src / f"{i:02d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "denoiser", "denoise", str(src), "-o", str(out), "--model", str(tiny_onnx)]
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen(cmd + ["--skip-existing"], stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and len(list(out.glob("*.png"))) < 3 + 5 * (sig == 15):
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (-9 if sig == signal.SIGKILL else 130), err
        finished = list(out.glob("*.png"))
        assert 3 <= len(finished) < 40
        for p in finished:  # every output under its final name is complete
            with Image.open(p) as im:
                im.load()
        if sig == signal.SIGTERM:  # a polite stop leaves not even a temp file
            assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert main(cmd[3:] + ["--skip-existing"]) == 0  # the rest, in-process (saves a slow torch import)
    assert len(list(out.glob("*.png"))) == 40 and not [p for p in out.iterdir() if p.name.startswith(".")]
