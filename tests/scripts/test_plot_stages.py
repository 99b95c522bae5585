"""scripts/plot_stages.py: the stage table's dB per CPU hour and the progress plot."""

from __future__ import annotations

import sys

from conftest import REPO
from PIL import Image

sys.path.insert(0, str(REPO / "scripts"))
import plot_stages  # noqa: E402

CSV = """model,stage,date,start,cpu_min,gpu_min,steps,gpx,set12_s15,set12_s25,set12_s50,sidd12,note
a,one,2026-12-01,random,30,0,100,0.1,30.0,28.00,25.0,,
a,two,2026-12-02,one,90,0,300,0.3,30.5,28.60,25.4,27.5,
b,one,2026-12-01,random,60,0,100,0.1,29.0,27.00,24.0,,
"""


def test_each_stage_gets_its_gain_per_cpu_hour_and_the_model_its_running_total(tmp_path):
    (tmp_path / "s.csv").write_text(CSV)
    models = plot_stages.read_stages(tmp_path / "s.csv")
    assert [s["hours"] for s in models["a"]] == [0.5, 2.0]
    rows = plot_stages.table(models).splitlines()
    assert len(rows) == 2 + 3
    assert rows[3].endswith("| 27.5 | +0.40 |")  # 0.6 dB in 1.5 CPU hours
    assert "| 1.50 (2.00) |" in rows[3] and rows[2].endswith("| - | - |")


def test_the_plot_is_drawn(tmp_path):
    (tmp_path / "s.csv").write_text(CSV)
    assert plot_stages.main(["--stages", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "p.png")]) == 0
    img = Image.open(tmp_path / "p.png").convert("RGB")
    assert img.size == (760, 430)
    assert len(img.getcolors(maxcolors=1 << 16)) > 4  # axes, references and the two models' colours
