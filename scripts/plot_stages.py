"""What each training stage of the default models bought: a table (dB per CPU hour) and a plot.

    python scripts/plot_stages.py                       # table from docs/training_stages.csv
    python scripts/plot_stages.py --plot docs/training_progress.png

docs/training_stages.csv holds one row per stage (a recipe run, or a leg of a long run) with
its CPU minutes, GPU minutes, steps, pixels seen and the scores of the weights after it
(scripts/score_models.py: Set12 at Gaussian sigma 15/25/50 and the SIDD12 real pairs). Rows of
one model are in training order; a stage continues the row above it. The plot draws Set12
sigma 25 against the model's cumulative CPU hours, with BM3D and FFDNet as flat lines, so a
flattening curve shows when a recipe has stopped paying. Drawn with Pillow (no plotting library
in the project's dependencies).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
# Set12 sigma 25 under our protocol (BENCHMARKS.md, "Quality against the classics") and FFDNet's
# published figure: the lines the models are judged against.
REFERENCES = {"BM3D (told sigma)": 29.99, "FFDNet (published)": 30.43}
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def read_stages(path: Path) -> dict[str, list[dict]]:
    """Model -> its stages in order, each with `hours`: the model's CPU hours once it is done."""
    models: dict[str, list[dict]] = {}
    for row in csv.DictReader(path.open()):
        stages = models.setdefault(row["model"], [])
        before = stages[-1]["hours"] if stages else 0.0
        stages.append({**row, "hours": before + float(row["cpu_min"]) / 60})
    return models


def table(models: dict[str, list[dict]]) -> str:
    lines = ["| model | stage | start | CPU h (total) | GPU min | G px | Set12 σ15 / σ25 / σ50 | SIDD12 | "
             "σ25 dB per CPU h |", "|---|---|---|---:|---:|---:|---|---:|---:|"]
    for name, stages in models.items():
        for i, s in enumerate(stages):
            gain = "-"
            if i:
                hours = float(s["cpu_min"]) / 60
                gain = f"{(float(s['set12_s25']) - float(stages[i - 1]['set12_s25'])) / hours:+.2f}"
            lines.append(f"| {name} | {s['stage']} | {s['start']} | {float(s['cpu_min']) / 60:.2f} ({s['hours']:.2f}) "
                         f"| {s['gpu_min']} | {s['gpx']} | {s['set12_s15']} / {s['set12_s25']} / {s['set12_s50']} "
                         f"| {s['sidd12'] or '-'} | {gain} |")
    return "\n".join(lines)


def plot(models: dict[str, list[dict]], out: Path, size: tuple[int, int] = (760, 430)) -> None:
    w, h = size
    left, right, top, bottom = 60, 200, 30, 45
    xmax = max(s["hours"] for stages in models.values() for s in stages) * 1.05
    values = [float(s["set12_s25"]) for stages in models.values() for s in stages] + list(REFERENCES.values())
    ymin, ymax = int(min(values)) - 0.5, int(max(values)) + 1.0
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)

    def xy(hours: float, db: float) -> tuple[float, float]:
        return (left + hours / xmax * (w - left - right), top + (ymax - db) / (ymax - ymin) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for k in range(int(xmax) + 1):
        x, _ = xy(k, ymin)
        d.line([x, h - bottom, x, h - bottom + 4], fill="black")
        d.text((x - 3, h - bottom + 6), str(k), fill="black")
    y_tick = ymin
    while y_tick <= ymax:
        _, y = xy(0, y_tick)
        d.line([left - 4, y, left, y], fill="black")
        d.text((left - 40, y - 6), f"{y_tick:.1f}", fill="black")
        y_tick += 0.5
    d.text((left + 120, h - 18), "CPU hours of training (one thread), cumulative per model", fill="black")
    d.text((left, 8), "Set12, Gaussian sigma 25: PSNR (dB) of each model after each stage", fill="black")
    for (label, db), colour in zip(REFERENCES.items(), ("#777777", "#444444")):
        _, y = xy(0, db)
        d.line([left, y, w - right, y], fill=colour, width=1)
        d.text((w - right + 6, y - 6), label, fill=colour)
    for i, (name, stages) in enumerate(models.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [xy(s["hours"], float(s["set12_s25"])) for s in stages]
        if len(points) > 1:
            d.line(points, fill=colour, width=2)
        for x, y in points:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.text((w - right + 6, h - bottom - 16 * (len(models) - i)), f"- {name}", fill=colour)  # below the references
    img.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", type=Path, default=ROOT / "docs" / "training_stages.csv")
    ap.add_argument("--plot", type=Path, help="also draw the plot to this PNG")
    args = ap.parse_args(argv)
    if not args.stages.is_file():
        raise SystemExit(f"not found: {args.stages}")
    models = read_stages(args.stages)
    print(table(models))
    if args.plot:
        plot(models, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
