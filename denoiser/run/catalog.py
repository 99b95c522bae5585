"""Which models are available to run: shipped checkpoints, training runs, their exports.

The app's model picker lists these. A model is any file `Denoiser.load` takes: a checkpoint
(`.safetensors`), an ONNX export (`.onnx`) or a TensorRT engine (`.engine`). Training
snapshots (`last.safetensors`, which carry optimizer state) and half-written files are left
out; what a run leaves for use is its final `model.safetensors` and its `best.safetensors`.
Discovery only looks at names: nothing is loaded, so listing stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from denoiser.core.paths import CHECKPOINTS_DIR, REPO_ROOT
from denoiser.run.inference import DEFAULT_MODEL, shipped_gray_companion

MODEL_SUFFIXES = {".safetensors": "checkpoint", ".onnx": "onnx", ".engine": "engine"}
KIND_NAMES = {"checkpoint": "", "onnx": " (ONNX)", "engine": " (TensorRT)"}  # what the picker adds to a name
SNAPSHOT_NAMES = frozenset({"last.safetensors"})  # training state: resumable, not meant to be run
DEFAULT_CHECKPOINTS_DIR = CHECKPOINTS_DIR
DEFAULT_RUNS_DIR = REPO_ROOT / "runs"


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    kind: str  # checkpoint | onnx | engine
    label: str  # what a person reads in the picker


def model_kind(path: str | Path) -> str | None:
    return MODEL_SUFFIXES.get(Path(path).suffix.lower())


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (path.is_file() and model_kind(path) is not None and name not in SNAPSHOT_NAMES
            and not name.startswith(".") and not name.endswith(".part"))


def _label(path: Path, kind: str, checkpoints_dir: Path | None) -> str:
    """A short name that fits the picker: `default-color`, `my-run/model`, `my-run/model (ONNX)`.

    Full paths were cut off in the picker; the folder is named only outside `checkpoints_dir`,
    where it is the run's name (every run holds a model.safetensors).
    """
    name = path.stem + KIND_NAMES[kind]
    shown = name if checkpoints_dir is not None and path.parent == checkpoints_dir else f"{path.parent.name}/{name}"
    gray = shipped_gray_companion(path)  # the app runs gray uploads on it (ui_denoise)
    return f"{shown} · gray: {gray.stem}" if gray else shown


def _relative(path: Path) -> str:
    for base in (REPO_ROOT, Path.cwd()):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def discover_models(checkpoints_dir: str | Path | None = DEFAULT_CHECKPOINTS_DIR,
                    runs_dir: str | Path | None = DEFAULT_RUNS_DIR,
                    extra: tuple[str | Path, ...] = ()) -> list[ModelEntry]:
    """Models in `checkpoints_dir` (top level), in each run folder of `runs_dir` (one level
    down, newest run first), and the `extra` files (e.g. the model the app was started with).

    Each file appears once, under its resolved path; the default model comes first.
    """
    found: list[Path] = [Path(p) for p in extra if p and Path(p).is_file()]
    if checkpoints_dir and Path(checkpoints_dir).is_dir():
        found += sorted(p for p in Path(checkpoints_dir).iterdir() if _is_candidate(p))
    if runs_dir and Path(runs_dir).is_dir():
        runs = [d for d in Path(runs_dir).iterdir() if d.is_dir() and not d.name.startswith(".")]
        for run in sorted(runs, key=lambda d: d.stat().st_mtime, reverse=True):
            found += sorted((p for p in run.iterdir() if _is_candidate(p)), key=_run_file_order)
    seen: set[Path] = set()
    entries = []
    home = Path(checkpoints_dir).resolve() if checkpoints_dir else None
    for p in found:
        resolved = p.resolve()
        if resolved in seen or not _is_candidate(resolved):
            continue
        seen.add(resolved)
        kind = model_kind(resolved)
        entries.append(ModelEntry(resolved, kind, _label(resolved, kind, home)))
    labels = [e.label for e in entries]  # two short names alike (same run name twice): the path tells them apart
    entries = [e if labels.count(e.label) == 1 else replace(e, label=_relative(e.path))
               for e in entries]
    default = DEFAULT_MODEL.resolve()
    entries.sort(key=lambda e: e.path != default)  # stable: only lifts the default to the top
    return entries


def _run_file_order(p: Path) -> tuple[int, str]:
    # In a run folder the final model is what people want; then the best; then exports.
    rank = {"model.safetensors": 0, "best.safetensors": 1}.get(p.name, 2)
    return rank, p.name
