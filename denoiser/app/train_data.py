"""Where the app's training data comes from: an uploaded zip (noisy/ + clean/ pairs, or clean
images to add noise to), a folder on the server, or procedural images that need no data.

Server folders are off unless the app was started with a data root (`--data-root`), and then
only folders inside that root are accepted: the path is resolved (`..` and symbolic links
followed) before it is checked, so neither `../../etc` nor a link out of the root gets through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from denoiser.app.archive import extract_zip
from denoiser.core.imageio import is_image_path

SOURCES = {
    "procedural": "Procedural images (no data needed)",
    "clean-zip": "Zip of clean images (noise is added)",
    "pairs-zip": "Zip of noisy/ and clean/ pairs",
    "folder": "Folder on the server",
}


@dataclass(frozen=True)
class TrainingSource:
    """The data fields of a DataConfig, and a line saying what was found."""

    clean_dirs: tuple[str, ...] = ()
    pairs: tuple[str, str] | None = None
    procedural: bool = True
    description: str = ""


def folder_under_root(root: str | Path | None, user_path: str) -> Path:
    """The folder `user_path` (relative to `root`) if it lies inside `root`; ValueError otherwise."""
    if root is None:
        raise ValueError("server folders are off: start the app with --data-root DIR to allow folders under DIR")
    if not (user_path or "").strip():
        raise ValueError("give a folder, relative to the data root")
    base = Path(root).resolve()
    candidate = (base / user_path.strip()).resolve()  # an absolute user_path replaces base: checked below
    if not candidate.is_relative_to(base):
        raise ValueError(f"{user_path!r} is outside the data root; only folders under it can be used")
    if not candidate.is_dir():
        raise ValueError(f"{user_path!r} is not a folder under the data root")
    return candidate


def _pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    """noisy/ and clean/ in `folder` or in its only subfolder (a zip of a folder nests once)."""
    subfolders = [d for d in folder.iterdir() if d.is_dir()]
    bases = [folder] + (subfolders if len(subfolders) == 1 else [])
    for base in bases:
        subs = {d.name.lower(): d for d in base.iterdir() if d.is_dir()}
        if "noisy" in subs and "clean" in subs:
            return subs["noisy"], subs["clean"]
    return None


def _count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith("."))


def _from_folder(folder: Path, want: str, mix_procedural: bool, shown: str) -> TrainingSource:
    pairs = _pair_dirs(folder)
    if want in ("pairs", "any") and pairs:
        noisy, clean = pairs
        return TrainingSource(pairs=(str(noisy), str(clean)), procedural=False,
                              description=f"pairs from {shown}: {_count_images(noisy)} noisy, "
                                          f"{_count_images(clean)} clean files")
    if want == "pairs":
        raise ValueError(f"{shown} must hold a noisy/ and a clean/ folder (matched by file name)")
    n = _count_images(folder)
    if n == 0:
        raise ValueError(f"{shown} holds no images (PNG, JPEG, TIFF, BMP or WebP)")
    return TrainingSource(clean_dirs=(str(folder),), procedural=mix_procedural,
                          description=f"{n} clean images from {shown}" + (" + procedural" if mix_procedural else ""))


def resolve_source(source: str, zip_path: str | None, folder: str | None, data_root: str | Path | None,
                   work_dir: Path, mix_procedural: bool = True) -> TrainingSource:
    """Turn the train tab's data choice into DataConfig fields; zips are extracted into work_dir."""
    if source == "procedural":
        return TrainingSource(description="procedural dead-leaves images")
    if source in ("clean-zip", "pairs-zip"):
        if not zip_path:
            raise ValueError("upload a zip first")
        got = extract_zip(zip_path, work_dir)
        shown = Path(zip_path).name
        result = _from_folder(got.root, "pairs" if source == "pairs-zip" else "clean", mix_procedural, shown)
        if got.refused:
            skipped = "; ".join(f"{name}: {why}" for name, why in got.refused[:5])
            result = TrainingSource(result.clean_dirs, result.pairs, result.procedural,
                                    f"{result.description} ({len(got.refused)} member(s) skipped: {skipped})")
        return result
    if source == "folder":
        path = folder_under_root(data_root, folder or "")
        return _from_folder(path, "any", mix_procedural, folder or "")
    raise ValueError(f"unknown data source {source!r}")
