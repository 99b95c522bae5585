"""Running a batch again into the input folder, an output path that is a file, and tile progress."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from denoiser.cli.main import main
from denoiser.run.inference import Denoiser
from denoiser.run.tiling import denoise_tiled

RNG = np.random.default_rng(1)


def save(path, h=24, w=20):
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_rerun_into_the_input_folder_skips_its_own_outputs(tiny_onnx, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.png")
    save(src / "b.png")
    run = ["denoise", str(src), "-o", str(src), "--suffix", "_dn", "--model", str(tiny_onnx)]
    assert main(run) == 0
    capsys.readouterr()
    save(src / "c.png")  # a new photo arrives; the rerun denoises only it
    before = (src / "a_dn.png").read_bytes()
    assert main(run + ["--skip-existing", "--report", str(tmp_path / "report.json")]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["earlier_outputs_left_out"] == 2
    err = capsys.readouterr().err
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_dn.png", "b.png", "b_dn.png", "c.png", "c_dn.png"]
    assert (src / "a_dn.png").read_bytes() == before
    assert "3 files" in err and "1 denoised, 2 skipped, 0 failed" in err
    assert "left out 2 file(s) ending in _dn" in err  # a_dn and b_dn, from the first run


def test_rerun_by_glob_leaves_outputs_out_but_an_explicit_file_is_tried(tiny_onnx, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.png")
    model = ["--suffix", "_dn", "--model", str(tiny_onnx)]
    assert main(["denoise", str(src / "*.png"), "-o", str(src), *model]) == 0
    assert main(["denoise", str(src / "*.png"), "-o", str(src), "--skip-existing", *model]) == 0
    assert "left out 1 file(s) ending in _dn" in capsys.readouterr().err
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_dn.png"]
    # named by the user, an earlier output is an input like any other
    assert main(["denoise", str(src / "a_dn.png"), "-o", str(src), *model]) == 0
    assert (src / "a_dn_dn.png").exists()


def test_suffixed_names_elsewhere_are_still_inputs(tiny_onnx, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    save(src / "scan_dn.png")  # not in the output folder: not an output of ours
    assert main(["denoise", str(src), "-o", str(out), "--suffix", "_dn", "--model", str(tiny_onnx)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scan_dn_dn.png"]


def test_output_folder_that_is_a_file_is_named_as_such(tiny_onnx, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.png")
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    for out in (taken, taken / "sub"):
        assert main(["denoise", str(src), "-o", str(out), "--model", str(tiny_onnx)]) == 2
        err = capsys.readouterr().err
        assert f"{taken} is a file, not a folder" in err and "appeared" not in err
    assert taken.read_bytes() == b"x"


def test_tiled_image_reports_each_tile_once():
    img = RNG.random((100, 70, 3), dtype=np.float32)
    calls = []
    out = denoise_tiled(lambda x: x, img, tile=32, margin=8, alignment=4, batch=2,
                        progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(out, img)
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total) and total == 4 * 3
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # strictly increasing


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_single_large_photo_shows_tile_progress_on_a_terminal(tiny_onnx, tmp_path, monkeypatch, capsys, tty):
    src = tmp_path / "big.png"
    save(src, 360, 300)
    dn = Denoiser.load(tiny_onnx, tile=32, memory_mb=1)
    assert dn.tile == 32 and 360 * 300 > dn.tile_batch * (32 + 2 * dn.info.receptive_field) ** 2  # tiled
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx), "--tile", "32",
                 "--memory-mb", "1"]) == 0
    err = stream.getvalue()
    assert "1 denoised" in err
    if tty:
        assert "big.png: tiles " in err and "MP/s" in err
        last = err.rsplit("tiles ", 1)[1].split(" ", 1)[0]
        done, total = map(int, last.split("/"))
        assert done == total > 1
    else:
        assert "big.png: tiles" not in err and "\r" not in err
