"""core/atomic.py: files replaced whole or not at all, pairs (artifact + sidecar) together."""

import os

import pytest
from conftest import file_mode

from denoiser.core.atomic import atomic_write, atomic_write_pair, sidecar_path


def write_pair(data: bytes, side: str):
    def write(tmp):
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)  # as safetensors and mkstemp would: undone
        sidecar_path(tmp).write_text(side)
    return write


def test_a_pair_replaces_both_files_with_the_users_mode(umask, tmp_path):
    path = tmp_path / "m.onnx"
    assert atomic_write_pair(path, write_pair(b"new", '{"v": 1}')) == path
    assert path.read_bytes() == b"new" and sidecar_path(path).read_text() == '{"v": 1}'
    assert file_mode(path) == file_mode(sidecar_path(path)) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.json"]  # no temp folder left


def test_an_interrupted_pair_leaves_the_old_pair(tmp_path):
    path = tmp_path / "m.onnx"
    atomic_write_pair(path, write_pair(b"old", "old"))

    def dies(tmp):
        tmp.write_bytes(b"half")
        sidecar_path(tmp).write_text("half")
        raise KeyboardInterrupt  # Ctrl-C half-way: BaseException, not Exception

    with pytest.raises(KeyboardInterrupt):
        atomic_write_pair(path, dies)
    with pytest.raises(RuntimeError, match="made no sidecar"):
        atomic_write_pair(path, lambda tmp: tmp.write_bytes(b"no sidecar"))
    assert path.read_bytes() == b"old" and sidecar_path(path).read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.json"]


def test_the_sidecar_lands_last(tmp_path, monkeypatch):
    """A reader takes the sidecar as the mark that the pair is complete."""
    landed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (landed.append(os.path.basename(b)), real(a, b)))
    atomic_write_pair(tmp_path / "m.engine", write_pair(b"e", "{}"))
    assert landed == ["m.engine", "m.engine.json"]


def test_the_writer_sees_the_final_name(tmp_path):
    seen = []
    atomic_write_pair(tmp_path / "model.onnx", lambda tmp: (seen.append(tmp.name), write_pair(b"x", "{}")(tmp)))
    assert seen == ["model.onnx"]  # what an export records as its "file"


def test_no_clobber_keeps_an_existing_file(umask, tmp_path):
    path = tmp_path / "out.png"
    atomic_write(path, lambda tmp: tmp.write_bytes(b"first"), replace=False, fsync=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"second"), replace=False)
    assert path.read_bytes() == b"first" and file_mode(path) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.png"]
