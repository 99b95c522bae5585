"""Zips from strangers: unsafe names, links and bombs are refused; good members still arrive."""

import stat
import zipfile

import pytest

from denoiser.app.archive import ArchiveError, extract_zip, zip_folder


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


def bomb(path, members: int, size: int):
    """`members` files of `size` zero bytes each, deflated: a small zip that expands a lot
    (the issue's 5 MB zip of five 1 GiB members, scaled down)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("keep/ok.png", b"fine")
        for i in range(members):
            zf.writestr(f"deep/er/zeros{i}.bin", b"\0" * size)
    return path


def test_a_refused_archive_leaves_nothing_behind(tmp_path):
    z = bomb(tmp_path / "bomb.zip", 5, 1 << 20)
    assert z.stat().st_size < 64 << 10
    with pytest.raises(ArchiveError, match="expands to more than") as refused:
        extract_zip(z, tmp_path / "out", max_total_bytes=9 << 19)  # 4.5 MiB: four members fit, the fifth not
    assert not (tmp_path / "out").exists()  # the four members written before the limit are gone too
    assert "4.5 MiB; the limit guards" in str(refused.value)  # no other files in this request
    existing = tmp_path / "existing"
    (existing / "mine").mkdir(parents=True)
    with pytest.raises(ArchiveError):
        extract_zip(z, existing, max_total_bytes=9 << 19)
    assert [p.name for p in existing.rglob("*")] == ["mine"]  # a folder it did not make is kept, as is its content


def test_the_byte_budget_counts_across_the_files_of_a_request(tmp_path):
    from denoiser.app.archive import ByteBudget

    budget = ByteBudget(3 << 20)
    first = extract_zip(bomb(tmp_path / "a.zip", 2, 1 << 20), tmp_path / "a", budget=budget)
    assert len(first.files) == 3 and budget.used == first.bytes == (2 << 20) + 4
    with pytest.raises(ArchiveError, match="with the other files of this request"):
        extract_zip(bomb(tmp_path / "b.zip", 2, 1 << 20), tmp_path / "b", budget=budget)  # alone it would fit
    assert not (tmp_path / "b").exists() and budget.used == first.bytes  # what b wrote is deleted and given back
    assert all(p.is_file() for p in first.files)
    assert extract_zip(bomb(tmp_path / "c.zip", 0, 0), tmp_path / "c", budget=budget).files  # room for small ones


def test_clashing_duplicate_and_overlong_names_are_rows_not_errors(tmp_path):
    long_part = "x" * 256 + ".png"
    wide = "é" * 128 + ".png"  # 132 characters, 260 bytes in UTF-8
    with zipfile.ZipFile(tmp_path / "odd.zip", "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, data in [("a.png", b"a"), ("a.png/b.png", b"b"), ("c/d.png", b"d"), ("c", b"c"),
                           ("dup.png", b"first"), ("dup.png", b"second"), ("./dup.png", b"third"),
                           (long_part, b"l"), (f"dir/{long_part}/e.png", b"e"), (wide, b"w"), ("fine.png", b"f")]:
            zf.writestr(name, data)
    got = extract_zip(tmp_path / "odd.zip", tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in got.files) == ["a.png", "c/d.png", "dup.png", "fine.png"]
    assert (out / "dup.png").read_bytes() == b"first"  # a duplicate never overwrites
    reasons = dict(got.refused)
    assert "also holds a file named a.png" in reasons["a.png/b.png"]
    assert "also holds a folder named c" in reasons["c"]
    assert [name for name, _ in got.refused].count("dup.png") == 1 and "duplicate" in reasons["./dup.png"]
    for name in (long_part, f"dir/{long_part}/e.png", wide):
        assert "longer than 255 bytes" in reasons[name]
    assert not [why for _, why in got.refused if str(tmp_path) in why]


def test_member_errors_are_caught_one_by_one_and_name_no_server_path(tmp_path):
    """The file system's own refusals (here: a file already where a member goes) are rows too."""
    z = make_zip(tmp_path / "in.zip", {"taken.png": b"new", "sub/x.png": b"x", "free.png": b"ok"})
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "taken.png").write_bytes(b"old")
    (out / "sub" / "x.png").mkdir()  # a folder where a member's file goes
    got = extract_zip(z, out)
    assert [p.name for p in got.files] == ["free.png"] and (out / "taken.png").read_bytes() == b"old"
    reasons = dict(got.refused)
    assert reasons["taken.png"] == "cannot extract: File exists"
    assert reasons["sub/x.png"] == "cannot extract: File exists"
