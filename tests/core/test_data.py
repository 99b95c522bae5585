from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from denoiser.core.config import DataConfig, NoiseConfig
from denoiser.core.data import (
    CleanCrops,
    CleanImages,
    IndexStream,
    PairedFolder,
    build_training_data,
    list_images,
    load_clean_images,
)
from denoiser.core.noise.ops import synthesize


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


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


def test_paired_folder_reports_clashing_stems_missing_folders_and_which_side_is_unreadable(tmp_path):
    _make_pairs(tmp_path, ["a.png"], ["a.png"])
    _save(tmp_path / "noisy" / "A.JPG", np.zeros((48, 40, 3), np.uint8))  # same stem as a.png
    (tmp_path / "clean" / "d.png").write_bytes(b"garbage")
    _save(tmp_path / "noisy" / "d.tif", np.zeros((48, 40, 3), np.uint8))
    with pytest.raises(ValueError) as e:
        PairedFolder(tmp_path / "noisy", tmp_path / "clean", crop=32, channels=3, seed=0)
    msg = str(e.value)
    assert "two noisy files match the name a" in msg and "unreadable pair d: clean d.png" in msg
    with pytest.raises(ValueError) as e:
        PairedFolder(tmp_path / "missing_noisy", tmp_path / "missing_clean", crop=32, channels=3, seed=0)
    assert "noisy folder not found" in str(e.value) and "clean folder not found" in str(e.value)


def test_paired_folder_matches_files_in_subfolders_by_relative_path(tmp_path):
    _make_pairs(tmp_path, ["x/IMG.Png", "y/img.png"], ["x/img.jpg", "y/img.png"])
    ds = PairedFolder(tmp_path / "noisy", tmp_path / "clean", crop=32, channels=3, seed=0)
    assert ds.names == ["x/img", "y/img"]


def _image_of(fmt: str, mode: str, size=(40, 48)) -> np.ndarray:
    rng = np.random.default_rng(len(fmt) + len(mode))
    if mode == "I;16":
        return rng.integers(0, 65535, size, dtype=np.uint16)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 255, (*size, channels), dtype=np.uint8)
    return arr[..., 0] if channels == 1 else arr


@pytest.mark.parametrize("channels", [1, 3])
def test_folder_source_reads_every_format_bit_depth_and_mode(tmp_path, channels):
    import cv2

    cases = [("png", "L"), ("png", "RGB"), ("png", "RGBA"), ("png", "I;16"), ("jpg", "RGB"), ("jpeg", "L"),
             ("tif", "RGB"), ("tiff", "I;16"), ("bmp", "RGB"), ("webp", "RGB"), ("webp", "RGBA")]
    for i, (fmt, mode) in enumerate(cases):
        _save(tmp_path / f"d{i % 3}" / f"{i}.{fmt.upper() if i % 2 else fmt}", _image_of(fmt, mode))
    rgb16 = np.random.default_rng(0).integers(0, 65535, (40, 48, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16)  # 16-bit colour: Pillow cannot write it, OpenCV can
    images = load_clean_images((str(tmp_path),), channels=channels, min_size=32)
    assert len(images.images) == len(cases) + 1 and images.skipped_unreadable == 0
    assert all(im.shape == (40, 48, channels) and im.dtype == np.uint8 for im in images.images)
    by_name = dict(zip((p.rsplit("/", 1)[-1] for p in images.names), images.images))
    expected16 = np.round(rgb16[..., ::-1] / 65535 * 255)  # BGR on disk
    if channels == 1:
        expected16 = np.round(rgb16[..., ::-1] / 65535 @ np.array([0.299, 0.587, 0.114]) * 255)[..., None]
    assert np.abs(by_name["rgb16.png"].astype(float) - expected16).max() <= 1


def test_rgb_to_gray_uses_luma_weights_like_pillow(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    _save(tmp_path / "c.png", rgb)
    gray = load_clean_images((str(tmp_path),), channels=1, min_size=8).images[0][..., 0]
    pil_gray = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.abs(gray.astype(int) - pil_gray).max() <= 1


def test_small_and_unreadable_images_are_counted_and_reported(tmp_path, caplog):
    _save(tmp_path / "ok.png", np.zeros((64, 64, 3), np.uint8))
    _save(tmp_path / "small.png", np.zeros((64, 20, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    images = load_clean_images((str(tmp_path),), channels=3, min_size=32)
    assert (len(images.images), images.skipped_small, images.skipped_unreadable) == (1, 1, 1)
    assert "skipped 1 image(s) smaller than 32 px and 1 unreadable" in caplog.text


def test_weighted_sources_set_the_share_of_crops_from_each_folder(tmp_path):
    for i in range(12):
        _save(tmp_path / "big" / f"{i}.png", np.full((40, 40, 3), 200, np.uint8))
    _save(tmp_path / "small" / "0.png", np.full((40, 40, 3), 50, np.uint8))
    data = DataConfig(clean_dirs=(str(tmp_path / "big"), str(tmp_path / "small")), clean_weights=(1.0, 1.0),
                      procedural=False, crop=32, val_holdout=0.0)
    ds, _ = build_training_data(data, seed=0)
    from_small = np.mean([ds[i].mean().item() < 0.5 for i in range(400)])
    assert 0.42 < from_small < 0.58  # 1 image of 13, yet half the crops
    unweighted, _ = build_training_data(replace(data, clean_weights=()), seed=0)
    assert np.mean([unweighted[i].mean().item() < 0.5 for i in range(400)]) < 0.15
    with pytest.raises(ValueError, match="one weight per folder"):
        build_training_data(replace(data, clean_weights=(1.0,)), seed=0)


def test_procedural_mix_share(tmp_path):
    _save(tmp_path / "flat.png", np.full((40, 40, 3), 128, np.uint8))
    ds = CleanCrops(load_clean_images((str(tmp_path),), 3, 32), crop=32, channels=3, procedural_weight=0.3, seed=0)
    procedural = np.mean([ds[i].std().item() > 0 for i in range(300)])
    assert 0.22 < procedural < 0.38


def test_same_seed_same_pairs_and_loader_workers_give_different_crops():
    """Items are pure functions of (seed, index): two DataLoader worker processes each produce
    their share of the index stream, all distinct, identical to building them in this process."""
    ds = CleanCrops(CleanImages([], []), crop=24, channels=3, procedural_weight=1.0, seed=11)
    loader = DataLoader(ds, batch_size=2, sampler=IndexStream(0, 8), num_workers=2)
    from_workers = torch.cat(list(loader))
    assert len({x.numpy().tobytes() for x in from_workers}) == 8
    assert torch.equal(from_workers, torch.stack([ds[i] for i in range(8)]))
    again = CleanCrops(CleanImages([], []), crop=24, channels=3, procedural_weight=1.0, seed=11)
    other = CleanCrops(CleanImages([], []), crop=24, channels=3, procedural_weight=1.0, seed=12)
    cfg = NoiseConfig(spec="camera|gaussian:5-50")

    def pairs(d, s):
        return synthesize(torch.stack([d[i] for i in range(4)]), cfg, torch.Generator().manual_seed(s))

    assert torch.equal(pairs(ds, 0), pairs(again, 0))
    assert not torch.equal(pairs(ds, 0), pairs(other, 0)) and not torch.equal(pairs(ds, 0), pairs(ds, 1))


def test_paired_crops_stay_aligned_under_every_augmentation(tmp_path):
    rng = np.random.default_rng(1)
    clean = rng.integers(0, 200, (50, 60, 3), dtype=np.uint8)
    _save(tmp_path / "clean" / "p.png", clean)
    _save(tmp_path / "noisy" / "p.png", (clean + 30).astype(np.uint8))
    ds = PairedFolder(tmp_path / "noisy", tmp_path / "clean", crop=24, channels=3, seed=0)
    seen = set()
    for i in range(40):
        noisy, c = ds[i]
        assert torch.allclose(noisy - c, torch.full_like(c, 30 / 255), atol=1e-6)
        seen.add(c.numpy().tobytes())
    assert len(seen) > 30  # many different crops / flips / rotations
