"""Issue 15's quality targets, checked against one bench_quality run: what each target needs,
what our models got, and by how much they pass or miss it.

    python scripts/bench_quality.py --datasets ../shared/datasets --quality default balanced --json runs/bq/all.json
    python scripts/check_targets.py runs/bq/all.json
    python scripts/check_targets.py runs/bq/set12.json runs/bq/cbsd.json --gray v2-gray --color v2-color

The targets (PSNR; margin = ours - needed, a negative margin is a miss):

- gray model on Set12: at least BM3D + 0.2 dB and at least FFDNet - 0.3 dB, at every sigma;
- colour model on the 21 held-out CBSD432 photos: colour BM3D + 0.3 dB and FFDNet - 0.3 dB;
- both models above Open Image Denoise in every table, at every level: the gray model on gray
  images (Set12), the colour model on all three (colour files never go to the gray model);
- colour model on SIDD12 (real noise): above BM3D with one sigma tuned on these very images.

Every row of a model (one per --quality of the run) is checked: the default backend's INT8, FP32,
the self-ensemble. The peers are the run's own rows, on the same noisy files: nothing here is a
number typed in. A target whose set or peer the run left out is listed as not measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import BM3D, FFDNET, OIDN, REAL_BM3D_ORACLE  # noqa: E402

SET_NAMES = {"set12": "Set12", "cbsd432": "CBSD432 hold-out", "sidd12": "SIDD12"}


@dataclass(frozen=True)
class Target:
    model: str  # "gray" or "color": which of --gray / --color it is about
    set: str  # a bench_quality set
    peer: str  # the peer's row name in that set's results
    offset: float  # needed = the peer's PSNR + offset

    def label(self) -> str:
        peer = {BM3D: "BM3D", FFDNET: "FFDNet", OIDN: "OIDN", REAL_BM3D_ORACLE: "BM3D oracle"}[self.peer]
        where = f"{self.model}, {SET_NAMES[self.set]}"
        if not self.offset:
            return f"{where}: above {peer}"
        return f"{where}: at least {peer} {'+' if self.offset > 0 else '-'} {abs(self.offset):.1f} dB"


TARGETS = (
    Target("gray", "set12", BM3D, 0.2),
    Target("gray", "set12", FFDNET, -0.3),
    Target("color", "cbsd432", BM3D, 0.3),
    Target("color", "cbsd432", FFDNET, -0.3),
    Target("gray", "set12", OIDN, 0.0),
    *(Target("color", s, OIDN, 0.0) for s in ("set12", "cbsd432", "sidd12")),
    Target("color", "sidd12", REAL_BM3D_ORACLE, 0.0),
)


def model_rows(results: dict, stem: str) -> list[str]:
    """bench_quality's rows of the model file `stem`: "ours: STEM (how it ran)", one per quality."""
    return [name for name in results if name.startswith(f"ours: {stem} (")]


def check(results: dict, target: Target, row: str) -> tuple[list[str], list[float], bool]:
    """(levels, margins, holds): ours - needed at each level the peer was run at."""
    peer, ours = results[target.set][target.peer], results[target.set][row]
    levels = [lv for lv in peer if lv in ours]
    margins = [ours[lv]["psnr"] - (peer[lv]["psnr"] + target.offset) for lv in levels]
    holds = all(m >= 0 if target.offset else m > 0 for m in margins)
    return levels, margins, holds


def report(results: dict, stems: dict[str, str]) -> tuple[list[str], int, int]:
    """Markdown lines (a table, then what was not measured), targets held, targets checked."""
    lines = ["| target | our row | levels | margin (dB) | holds |", "|---|---|---|---|---|"]
    missing, held, checked = [], 0, 0
    for t in TARGETS:
        rows = model_rows(results.get(t.set, {}), stems[t.model])
        if t.set not in results or t.peer not in results[t.set] or not rows:
            missing.append(t.label())
            continue
        for row in rows:
            levels, margins, holds = check(results, t, row)
            checked += 1
            held += holds
            shown = " / ".join("real" if lv == "real" else f"σ{lv}" for lv in levels)
            lines.append(f"| {t.label()} | {row[len('ours: '):]} | {shown} | "
                         f"{' / '.join(f'{m:+.2f}' for m in margins)} | {'yes' if holds else '**no**'} |")
    if missing:
        lines += ["", "Not measured in this run: " + "; ".join(missing) + "."]
    return lines, held, checked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="`scripts/bench_quality.py --json` files (one run, or one per set)")
    ap.add_argument("--gray", default="default-gray", help="file stem of the gray model's rows (default: %(default)s)")
    ap.add_argument("--color", default="default-color", help="file stem of the colour model's rows (default: %(default)s)")
    args = ap.parse_args()
    results: dict = {}
    for path in args.json:
        try:
            results.update(json.loads(Path(path).read_text())["results"])
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"error: {path} is not a bench_quality --json file ({e})") from None
    lines, held, checked = report(results, {"gray": args.gray, "color": args.color})
    print("\n".join(lines))
    print(f"\n{held} of {checked} checks hold.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
