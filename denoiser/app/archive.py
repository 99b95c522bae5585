"""Zip archives in and out, safely: what the app's batch and train tabs receive and send.

A zip from a stranger may hold names that climb out of the target folder (`../x`, `/etc/x`),
links, names no file system takes, the same name twice, or far more bytes than it looks (a zip
bomb). Extraction therefore writes regular files only, never over an existing file, under
names checked to stay inside the target, and stops at a member count and a byte budget counted
on the bytes actually written (a member's declared size can lie). The budget can be shared by
every file of one request (`ByteBudget`), so many small uploads cannot add up to a full disk.

A member that cannot be written (a clash between a file and a folder of one name, a name part
over 255 bytes, a damaged or encrypted member) is reported by name with a reason, never raised,
so one bad member does not sink the rest; reasons never name server paths. An archive that is
refused as a whole (not a zip, over a limit) leaves nothing behind: everything it wrote is
deleted again before `ArchiveError` is raised.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 10_000
# Uncompressed bytes one request may write, across all its files: bounds the disk a request can
# take (the app runs a few requests at once). Room for dozens of full-size (50 MB) uploads.
MAX_REQUEST_BYTES = 2 << 30
MAX_NAME_BYTES = 255  # the longest file or folder name ext4, XFS, APFS and NTFS take
CHUNK = 1 << 20
# Folders that archivers add beside the real content: not the user's files.
JUNK_PARTS = frozenset({"__MACOSX"})
# What a damaged, encrypted (RuntimeError) or unsupported member, or a name the file system
# refuses (OSError, ValueError for a NUL byte), raises while one member is written.
MEMBER_ERRORS = (OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error)


class ArchiveError(ValueError):
    """A whole archive is unusable (not a zip, over the limits), with a message for a person."""


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


class ByteBudget:
    """The bytes a request may still write. Shared by all its files; bytes of files deleted
    again (an archive refused as a whole) are given back, as they no longer take disk."""

    def __init__(self, limit: int = MAX_REQUEST_BYTES):
        self.limit, self.used = int(limit), 0

    def take(self, n: int, what: str, taken_by_what: int = 0) -> None:
        """Count `n` more bytes of `what` (which has `taken_by_what` already), or raise
        ArchiveError (nothing counted) past the limit."""
        if self.used + n > self.limit:
            shared = " with the other files of this request" if self.used > taken_by_what else ""
            raise ArchiveError(f"{what} expands to more than {format_bytes(self.limit)}{shared}; "
                               "the limit guards the server's disk")
        self.used += n

    def give_back(self, n: int) -> None:
        self.used = max(0, self.used - n)


@dataclass
class Extracted:
    root: Path
    files: list[Path] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (member name, reason)
    bytes: int = 0


def _safe_relative(name: str) -> PurePosixPath | None:
    """The member's path relative to the target, or None if it would leave it."""
    p = PurePosixPath(name.replace("\\", "/"))
    if not p.parts or p.is_absolute() or ".." in p.parts or ":" in p.parts[0]:  # ":": a Windows drive
        return None
    return p


def _why(e: BaseException) -> str:
    """An error's reason without the server path an OSError carries in its text."""
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    return str(e) or type(e).__name__


class _Extraction:
    """One archive's writes into `root`: what it created, so that all of it can be undone."""

    def __init__(self, zf: zipfile.ZipFile, root: Path, budget: ByteBudget, archive_name: str):
        self.zf, self.root, self.budget, self.archive_name = zf, root, budget, archive_name
        self.out = Extracted(root)
        self.files: dict[PurePosixPath, str] = {}  # extracted path -> its member name
        self.dirs: set[PurePosixPath] = set()  # folders that extracted files lie in
        self.created_dirs: list[Path] = []

    def refusal(self, m: zipfile.ZipInfo) -> str | None:
        """Why member `m` is not extracted, or None once it has been (see the module docstring)."""
        rel = _safe_relative(m.filename)
        if rel is None:
            return "unsafe path (absolute or outside the archive's folder)"
        if JUNK_PARTS & set(rel.parts) or any(part.startswith("._") for part in rel.parts):
            return ""  # macOS resource forks: metadata, not images; left out without a word
        if stat.S_ISLNK(m.external_attr >> 16):
            return "symbolic link (only regular files are extracted)"
        if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in rel.parts):
            return f"a name in its path is longer than {MAX_NAME_BYTES} bytes"
        if rel in self.files:
            return f"duplicate name: the archive holds {rel} more than once (the first one is kept)"
        if rel in self.dirs:
            return f"the archive also holds a folder named {rel}"
        clash = next((p for p in rel.parents if p in self.files), None)
        if clash is not None:
            return f"the archive also holds a file named {clash}, so it cannot be a folder"
        try:
            self._write(m, rel)
        except ArchiveError:
            raise
        except MEMBER_ERRORS as e:
            return f"cannot extract: {_why(e)}"
        self.files[rel] = m.filename
        self.dirs.update(rel.parents)
        return None

    def _mkdirs(self, rel_dir: PurePosixPath) -> None:
        path = self.root
        for part in rel_dir.parts:
            path = path / part
            if not path.is_dir():
                path.mkdir()  # FileExistsError where a file of that name is already there
                self.created_dirs.append(path)

    def _write(self, m: zipfile.ZipInfo, rel: PurePosixPath) -> None:
        dest = self.root.joinpath(*rel.parts)
        self._mkdirs(rel.parent)
        if not dest.resolve().is_relative_to(self.root):
            raise ValueError("unsafe path")
        written = 0
        opened = False
        try:
            with self.zf.open(m) as src, open(dest, "xb") as dst:  # "x": never over an existing file
                opened = True
                while chunk := src.read(CHUNK):
                    self.budget.take(len(chunk), self.archive_name, self.out.bytes + written)
                    written += len(chunk)
                    dst.write(chunk)
        except BaseException:
            self.budget.give_back(written)
            if opened:
                _remove(dest)
            raise
        self.out.files.append(dest)
        self.out.bytes += written

    def undo(self, remove_root: bool) -> None:
        """Delete every file and folder this extraction made; give their bytes back."""
        for f in self.out.files:
            _remove(f)
        self.budget.give_back(self.out.bytes)
        for d in [*reversed(self.created_dirs), *([self.root] if remove_root else [])]:  # deepest first
            try:
                d.rmdir()
            except OSError:  # not empty: something else put files there
                pass
        self.out.files.clear()


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def extract_zip(archive: str | Path, target: str | Path, max_members: int = MAX_MEMBERS,
                max_total_bytes: int = MAX_REQUEST_BYTES, budget: ByteBudget | None = None) -> Extracted:
    """Extract `archive` into `target` (created); see the module docstring for the rules.

    `budget`: shared by all files of one request (default: a fresh one of `max_total_bytes`).
    Raises ArchiveError, after deleting whatever it wrote, for an archive refused as a whole.
    """
    name = Path(archive).name
    budget = budget if budget is not None else ByteBudget(max_total_bytes)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise ArchiveError(f"{name} is not a readable zip archive ({_why(e)})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_members:
            raise ArchiveError(f"{name} holds {len(members)} files; the limit is {max_members}")
        target = Path(target)
        made_target = not target.exists()
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArchiveError(f"cannot make a folder for {name} ({_why(e)})") from None
        job = _Extraction(zf, target.resolve(), budget, name)
        try:
            for m in members:
                reason = job.refusal(m)
                if reason:
                    job.out.refused.append((m.filename, reason))
        except BaseException:  # over the budget, or interrupted: leave nothing behind
            job.undo(remove_root=made_target)
            raise
    return job.out


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

