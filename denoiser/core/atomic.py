"""Write a file atomically, with the mode any other file of the user's would get; hash one.

The data goes to a hidden temp file beside the target (`.NAME.XXXXXXXX.part`, what
`imageio.is_partial_output` recognises), which is then renamed over the target: a reader
never sees half a file, and a killed process leaves at most the hidden temp file.

The result gets the mode of a file made by `open()`: 0o666 less the umask. Not the 0o600 of
`tempfile.mkstemp`, nor of safetensors' `save_file` (which sets 0o600 itself), that a
rename would carry to the checkpoint or engine and keep from the user's group (a shared
model folder, a web server serving the files). The temp file is created with that mode,
which is read back and set again once the writer is done: no umask juggling, which would
race with other threads creating files.

An artifact with a JSON sidecar (`NAME.json` beside an .onnx or .engine: what it is, how it
was checked) is replaced as a pair (`atomic_write_pair`): both are written in a hidden temp
folder beside the target, then renamed into place, the sidecar last, because a reader takes
the sidecar as the mark that the pair is complete (and checks it names this very file).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable


def temp_beside(path: Path) -> Path:
    """A new, empty, hidden temp file in `path`'s folder, created exclusively (never an existing file)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _user_mode(tmp: Path) -> int:
    return stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 less the umask: how temp_beside made it


def atomic_write(path: str | Path, write: Callable[[Path], object], replace: bool = True,
                 fsync: bool = False) -> Path:
    """Call `write(tmp)` to fill a temp file beside `path`, then rename it to `path`.

    replace=False: never replace an existing file (FileExistsError instead), still atomically
    where the file system has hard links. fsync: flush the data to the disk before the rename
    (the user's outputs: a crash must not leave an empty file under the final name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        mode = _user_mode(tmp)
        write(tmp)
        os.chmod(tmp, mode)  # the writer may have set its own (safetensors: 0o600)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after a rename; a hard link leaves the name to remove
    return path


def _link_no_clobber(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # atomic and fails if the name exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a check, then the rename
        if path.exists():
            raise FileExistsError(f"{path} exists") from None
        os.replace(tmp, path)


def sidecar_path(artifact: str | Path) -> Path:
    """The JSON sidecar of an exported .onnx or built .engine: `NAME.onnx.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def atomic_write_pair(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` to make an artifact and its sidecar (`sidecar_path(tmp)`), then move
    both over `path` and its sidecar: the artifact first, the sidecar last (it marks the pair
    complete). If `write` raises, or makes no sidecar, the old pair stays as it was.

    `tmp` has `path`'s own name, in a hidden temp folder beside it, so whatever the writer
    records of the file's name is right; both files get the user's mode (as atomic_write).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    try:
        tmp, tmp_side = folder / path.name, sidecar_path(folder / path.name)
        mode = _user_mode(temp_beside(tmp))
        write(tmp)
        if not (tmp.is_file() and tmp_side.is_file()):
            raise RuntimeError(f"{path.name}: the writer made no {'file' if not tmp.is_file() else 'sidecar'}")
        for f in (tmp, tmp_side):
            os.chmod(f, mode)
        os.replace(tmp, path)
        os.replace(tmp_side, sidecar_path(path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def file_sha256(path: str | Path) -> str:
    """A file's SHA-256, read in 1 MiB chunks (checkpoints, exports and uploads: no torch here)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
