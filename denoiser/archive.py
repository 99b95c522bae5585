"""Zip archives in and out, safely: what the app's batch and train tabs receive and send.

A zip from a stranger may hold names that climb out of the target folder (`../x`, `/etc/x`),
links, or far more bytes than it looks (a zip bomb). Extraction therefore writes regular files
only, under names checked to stay inside the target, and stops at a member count and a byte
budget counted on the bytes actually written (a member's declared size can lie). Everything
refused is reported by name, not raised, so one bad member does not sink the rest.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 4 << 30  # uncompressed; bounds the disk a single upload can take
CHUNK = 1 << 20
# Folders that archivers add beside the real content: not the user's files.
JUNK_PARTS = frozenset({"__MACOSX"})


class ArchiveError(ValueError):
    """A whole archive is unusable (not a zip, over the limits), with a message for a person."""


@dataclass
class Extracted:
    root: Path
    files: list[Path] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (member name, reason)


def _safe_relative(name: str) -> PurePosixPath | None:
    """The member's path relative to the target, or None if it would leave it."""
    p = PurePosixPath(name.replace("\\", "/"))
    if not p.parts or p.is_absolute() or ".." in p.parts or ":" in p.parts[0]:  # ":": a Windows drive
        return None
    return p


def extract_zip(archive: str | Path, target: str | Path, max_members: int = MAX_MEMBERS,
                max_total_bytes: int = MAX_TOTAL_BYTES) -> Extracted:
    """Extract `archive` into `target` (created); see the module docstring for the rules."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    out = Extracted(target.resolve())
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArchiveError(f"{Path(archive).name} is not a readable zip archive ({e})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_members:
            raise ArchiveError(f"{Path(archive).name} holds {len(members)} files; the limit is {max_members}")
        budget = max_total_bytes
        for m in members:
            rel = _safe_relative(m.filename)
            if rel is None:
                out.refused.append((m.filename, "unsafe path (absolute or outside the archive's folder)"))
                continue
            if JUNK_PARTS & set(rel.parts) or any(part.startswith("._") for part in rel.parts):
                continue  # macOS resource forks: metadata, not images
            if stat.S_ISLNK(m.external_attr >> 16):
                out.refused.append((m.filename, "symbolic link (only regular files are extracted)"))
                continue
            dest = out.root.joinpath(*rel.parts)
            if not dest.resolve().is_relative_to(out.root):
                out.refused.append((m.filename, "unsafe path"))
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(m) as src, open(dest, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        budget -= len(chunk)
                        if budget < 0:
                            raise ArchiveError(f"{Path(archive).name} expands to more than "
                                               f"{max_total_bytes / 2**30:.1f} GiB; the limit guards the disk")
                        dst.write(chunk)
            except ArchiveError:
                dest.unlink(missing_ok=True)
                raise
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
                # a damaged member, or an encrypted one (RuntimeError: password required)
                dest.unlink(missing_ok=True)
                out.refused.append((m.filename, f"cannot extract: {e}"))
                continue
            out.files.append(dest)
    return out


def zip_folder(folder: str | Path, archive: str | Path) -> Path:
    """Zip every file under `folder`, named relative to it. Images are already compressed,
    so members are stored, not deflated: same size, no CPU spent."""
    folder, archive = Path(folder), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.resolve() != archive.resolve():
                zf.write(p, p.relative_to(folder).as_posix())
    return archive
