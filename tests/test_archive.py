"""Zips from strangers: unsafe names, links and bombs are refused; good members still arrive."""

import stat
import zipfile

import pytest

from denoiser.archive import ArchiveError, extract_zip, zip_folder


def make_zip(path, members: dict[str, bytes], links: dict[str, str] = {}):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_unsafe_names_and_links_are_refused_and_the_rest_extracted(tmp_path):
    z = make_zip(tmp_path / "in.zip", {"ok/a.png": b"a", "../evil.png": b"x", "/abs.png": b"x", "c:/win.png": b"x",
                                       "__MACOSX/._a.png": b"junk", "ok/._b.png": b"junk"},
                 links={"ok/link.png": "/etc/passwd"})
    got = extract_zip(z, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in got.files] == ["ok/a.png"]
    assert sorted(name for name, _ in got.refused) == ["../evil.png", "/abs.png", "c:/win.png", "ok/link.png"]
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out" / "ok" / "link.png").exists()


def test_byte_budget_stops_a_zip_bomb(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (5 << 20))  # 5 MiB that compress to a few KiB
    assert (tmp_path / "bomb.zip").stat().st_size < 64 << 10
    with pytest.raises(ArchiveError, match="expands to more than"):
        extract_zip(tmp_path / "bomb.zip", tmp_path / "out", max_total_bytes=1 << 20)
    assert not (tmp_path / "out" / "zeros.bin").exists()  # no partial file left behind


def test_member_count_limit_and_non_zips(tmp_path):
    z = make_zip(tmp_path / "many.zip", {f"{i}.png": b"x" for i in range(5)})
    with pytest.raises(ArchiveError, match="holds 5 files; the limit is 4"):
        extract_zip(z, tmp_path / "out", max_members=4)
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_zip(tmp_path / "fake.zip", tmp_path / "out")


def test_zip_folder_round_trips_the_tree(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.png").write_bytes(b"a")
    (tmp_path / "src" / "sub" / "b.png").write_bytes(b"b")
    z = zip_folder(tmp_path / "src", tmp_path / "out.zip")
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == ["a.png", "sub/b.png"] and zf.read("sub/b.png") == b"b"
