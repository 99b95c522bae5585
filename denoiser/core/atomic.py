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
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
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


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` to fill a temp file beside `path`, then rename it to `path` (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 less the umask
        write(tmp)
        os.chmod(tmp, mode)  # the writer may have set its own (safetensors: 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | Path) -> str:
    """A file's SHA-256, read in 1 MiB chunks (checkpoints, exports and uploads: no torch here)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
