import numpy as np
import pytest
from PIL import Image

from denoiser.data import (CleanCrops, CleanImages, IndexStream, PairedFolder, dead_leaves, list_images,
                           load_clean_images)


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


def test_dead_leaves_is_deterministic_and_varied():
    a = dead_leaves(64, 3, np.random.default_rng(1))
    b = dead_leaves(64, 3, np.random.default_rng(1))
    c = dead_leaves(64, 3, np.random.default_rng(2))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 10  # not a flat image
    assert dead_leaves(32, 1, np.random.default_rng(0)).shape == (32, 32, 1)


def test_procedural_crops_need_no_files_and_are_seeded_by_index():
    ds = CleanCrops(CleanImages([], []), crop=32, channels=3, procedural_weight=1.0, seed=0)
    x0, x0b, x1 = ds[0], ds[0], ds[1]
    assert x0.shape == (3, 32, 32) and 0 <= x0.min() and x0.max() <= 1
    assert (x0 == x0b).all() and not (x0 == x1).all()


def test_folder_source_crops_and_skips_small_images(tmp_path):
    rng = np.random.default_rng(0)
    _save(tmp_path / "a.png", rng.integers(0, 255, (80, 90, 3), dtype=np.uint8))
    _save(tmp_path / "sub" / "b.jpg", rng.integers(0, 255, (70, 70, 3), dtype=np.uint8))
    _save(tmp_path / "tiny.png", rng.integers(0, 255, (10, 10), dtype=np.uint8), "L")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.jpg", "tiny.png"]
    images = load_clean_images((str(tmp_path),), channels=3, min_size=32)
    assert len(images.images) == 2 and images.skipped_small == 1
    ds = CleanCrops(images, crop=32, channels=3, procedural_weight=0.0, seed=0)
    crops = [ds[i] for i in range(8)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    assert len({c.numpy().tobytes() for c in crops}) == 8


def test_index_stream_shards_cover_everything_once():
    shards = [list(IndexStream(start=5, count=10, rank=r, world=3)) for r in range(3)]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(15, 45))


def _make_pairs(tmp_path, names_noisy, names_clean, size=(48, 40)):
    rng = np.random.default_rng(0)
    for n in names_clean:
        clean = rng.integers(0, 200, (*size, 3), dtype=np.uint8)
        _save(tmp_path / "clean" / n, clean)
        stem = n.rsplit(".", 1)[0]
        match = [m for m in names_noisy if m.rsplit(".", 1)[0].lower() == stem.lower()]
        for m in match:
            _save(tmp_path / "noisy" / m, (clean + 50).astype(np.uint8))  # a known relation
    for m in names_noisy:
        if not (tmp_path / "noisy" / m).exists():
            _save(tmp_path / "noisy" / m, rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def test_paired_folder_matches_stems_case_insensitively_and_keeps_crops_aligned(tmp_path):
    _make_pairs(tmp_path, ["IMG_1.PNG", "img_2.png"], ["img_1.png", "IMG_2.png"])
    ds = PairedFolder(tmp_path / "noisy", tmp_path / "clean", crop=32, channels=3, seed=0)
    assert len(ds) == 2
    for i in range(10):
        noisy, clean = ds[i]
        assert noisy.shape == clean.shape == (3, 32, 32)
        assert np.allclose((noisy - clean).numpy(), 50 / 255, atol=1e-6)  # same crop, flip and rotation


def test_paired_folder_lists_every_problem_at_once(tmp_path):
    _make_pairs(tmp_path, ["a.png", "only_noisy.png"], ["a.png", "only_clean.png"])
    _save(tmp_path / "noisy" / "b.png", np.zeros((40, 40, 3), np.uint8))
    _save(tmp_path / "clean" / "b.png", np.zeros((48, 48, 3), np.uint8))
    (tmp_path / "noisy" / "c.png").write_bytes(b"garbage")
    _save(tmp_path / "clean" / "c.png", np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError) as e:
        PairedFolder(tmp_path / "noisy", tmp_path / "clean", crop=32, channels=3, seed=0)
    msg = str(e.value)
    for needle in ("only_noisy", "only_clean", "size mismatch for b", "unreadable pair c"):
        assert needle in msg
