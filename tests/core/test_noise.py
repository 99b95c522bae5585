import cv2
import numpy as np
import pytest
import torch
from conftest import gpu

from denoiser.core.config import (
    NOISE_PRESETS,
    NoiseConfig,
    RunConfig,
    from_dict,
    to_dict,
)
from denoiser.core.noise.kinds import KINDS as NOISE_DEFAULTS
from denoiser.core.noise.kinds import KINDS as OPS
from denoiser.core.noise.ops import (
    add_gaussian,
    protocol_noisy_uint8,
    round_to_8bit,
    synthesize,
)
from denoiser.core.noise.spec import (
    NOISE_KINDS,
    format_spec,
    parse_noise_spec,
    parse_spec,
)


def _noise(clean, spec, seed=0, device="cpu"):
    """Unclipped, unquantized noisy output for a spec."""
    return synthesize(clean, NoiseConfig(spec=spec, quantize_prob=0.0), torch.Generator(device).manual_seed(seed))


def _levels(n=16, size=128, channels=1):
    """n flat images from black to white: one intensity per sample."""
    x = torch.linspace(0, 1, n).view(-1, 1, 1, 1)
    return x.expand(n, channels, size, size).contiguous()


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_gaussian_sigma_matches_request(sigma):
    clean = torch.full((4, 3, 128, 128), 0.5)
    measured = ((_noise(clean, f"gaussian:{sigma:g}") - clean).std() * 255).item()
    assert abs(measured - sigma) / sigma < 0.02


def test_parameters_are_drawn_per_sample_within_the_range():
    clean = torch.full((300, 1, 32, 32), 0.5)
    per_sample = ((_noise(clean, "gaussian:10-30") - clean).std(dim=(1, 2, 3)) * 255)
    assert per_sample.min() > 9 and per_sample.max() < 31 and per_sample.std() > 4  # spread, not constant


@pytest.mark.parametrize("shot,read", [(20.0, 10.0), (30.0, 15.0)])
def test_poisson_gaussian_variance_is_linear_in_intensity(shot, read):
    clean = _levels(size=256)
    noisy = _noise(clean, f"poisson-gaussian:shot={shot:g},read={read:g}")
    level = clean[:, 0, 0, 0].double() * 255
    var = ((noisy - clean).double() * 255).var(dim=(1, 2, 3))
    slope, intercept = np.polyfit(level.numpy(), var.numpy(), 1)
    assert abs(slope - shot**2 / 255) / (shot**2 / 255) < 0.05  # the configured slope
    assert abs(intercept - read**2) / read**2 < 0.05  # and intercept (read noise)
    assert abs((noisy - clean).mean().item()) < 1e-3  # Poisson noise is zero-mean


def test_correlated_noise_has_the_sigma_and_the_neighbour_correlation_asked_for():
    clean = torch.full((8, 3, 128, 128), 0.5)
    n = (_noise(clean, "correlated:sigma=20,scale=1") - clean) * 255
    assert abs(n.std().item() - 20) / 20 < 0.03
    corr = (n[..., 1:] * n[..., :-1]).mean() / n.var()
    assert abs(corr.item() - np.exp(-1 / 4)) < 0.03  # blur std 1 px: autocorrelation exp(-d^2 / (4 s^2))
    white = (_noise(clean, "gaussian:20") - clean) * 255
    assert abs(((white[..., 1:] * white[..., :-1]).mean() / white.var()).item()) < 0.01


def test_speckle_grows_with_intensity():
    clean = _levels(n=5, size=128)[1:]  # 0.25, 0.5, 0.75, 1
    std = ((_noise(clean, "speckle:40") - clean) * 255).std(dim=(1, 2, 3))
    assert torch.allclose(std, 40 * clean[:, 0, 0, 0], rtol=0.03)


def test_salt_and_pepper_hits_the_requested_share_of_whole_pixels():
    clean = torch.full((4, 3, 128, 128), 0.5)
    noisy = _noise(clean, "salt-pepper:0.1")
    hit = (noisy != 0.5).any(dim=1)
    assert abs(hit.float().mean().item() - 0.1) < 0.01
    assert set(noisy[:, 0][hit].unique().tolist()) == {0.0, 1.0}
    assert (noisy == noisy[:, :1]).all()  # every channel of a hit pixel goes black or white together


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_is_a_real_encoder_round_trip(channels, sample_rgb):
    rgb = np.asarray(sample_rgb.resize((64, 64)))
    img = rgb if channels == 3 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    clean = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    out = _noise(clean, "jpeg:40")
    bgr = img[..., ::-1] if channels == 3 else img[..., 0]
    ref = cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, 40])[1], -1)
    ref = ref[..., ::-1] if channels == 3 else ref[..., None]
    assert np.array_equal((out[0].permute(1, 2, 0) * 255).round().byte().numpy(), ref)


def test_jpeg_quality_is_drawn_per_sample_and_lower_quality_hurts_more(sample_rgb):
    img = torch.from_numpy(np.asarray(sample_rgb.resize((64, 64))).copy()).permute(2, 0, 1).float() / 255
    clean = img.expand(64, -1, -1, -1).contiguous()
    err_low = (_noise(clean, "jpeg:10") - clean).abs().mean()
    err_high = (_noise(clean, "jpeg:95") - clean).abs().mean()
    assert err_low > 2 * err_high
    mixed = (_noise(clean, "jpeg:10-95") - clean).abs().mean(dim=(1, 2, 3))
    assert len(set(mixed.tolist())) > 10  # many different qualities across one batch


def test_a_chain_applies_its_ops_in_order():
    clean = torch.rand(2, 3, 32, 32)
    out = _noise(clean, "gaussian:10+jpeg:90")  # jpeg last: the output is 8-bit
    assert torch.equal(out, round_to_8bit(out))
    assert not torch.equal(_noise(clean, "jpeg:90+gaussian:10"), round_to_8bit(_noise(clean, "jpeg:90+gaussian:10")))


def test_a_mixture_gives_each_sample_one_chain_with_the_weighted_share():
    clean = torch.full((400, 1, 8, 8), 0.5)
    noisy = _noise(clean, "salt-pepper:1@3|gaussian:0")  # all pixels hit | untouched
    hit = (noisy != 0.5).all(dim=(1, 2, 3))
    untouched = (noisy == 0.5).all(dim=(1, 2, 3))
    assert (hit | untouched).all()
    assert 0.70 < hit.float().mean() < 0.80


@pytest.mark.parametrize("spec", ["gaussian:0-55", "camera", "poisson-gaussian|speckle+salt-pepper"])
def test_same_seed_same_noise_and_different_seed_differs(spec):
    clean = torch.rand(4, 3, 24, 24)
    cfg = NoiseConfig(spec=spec)
    a = synthesize(clean, cfg, torch.Generator().manual_seed(3))
    b = synthesize(clean, cfg, torch.Generator().manual_seed(3))
    c = synthesize(clean, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_plain_gaussian_spec_keeps_the_random_stream_of_earlier_versions():
    """Runs snapshotted before noise specs existed resume with the very same noise."""
    clean = torch.rand(3, 3, 16, 16)
    gen = torch.Generator().manual_seed(5)
    sigma = 0.0 + (55.0 - 0.0) * torch.rand(3, generator=gen)
    expected = clean + torch.randn(clean.shape, generator=gen) * (sigma / 255.0).view(-1, 1, 1, 1)
    pick = torch.rand(3, generator=gen) < 0.5
    expected = torch.where(pick.view(-1, 1, 1, 1), round_to_8bit(expected), expected)
    assert torch.equal(synthesize(clean, NoiseConfig(spec="gaussian:0-55"), torch.Generator().manual_seed(5)), expected)


def test_quantized_noise_is_8bit():
    q = round_to_8bit(torch.tensor([-0.2, 0.1234, 1.7]))
    assert torch.allclose(q * 255, torch.round(q * 255)) and q.min() >= 0 and q.max() <= 1


def test_quantize_prob_rounds_that_share_of_samples():
    clean = torch.full((200, 1, 8, 8), 0.5)
    noisy = synthesize(clean, NoiseConfig(spec="gaussian:20", quantize_prob=0.25), torch.Generator().manual_seed(0))
    rounded = (noisy == round_to_8bit(noisy)).all(dim=(1, 2, 3)).float().mean()
    assert 0.17 < rounded < 0.33


@pytest.mark.parametrize("spec,canonical", [
    ("gaussian:25", "gaussian:25"),
    ("GAUSSIAN", "gaussian:0-55"),
    (" gaussian : 5 - 50 ", "gaussian:5-50"),
    ("poisson-gaussian:read=3,shot=1-2", "poisson-gaussian:shot=1-2,read=3"),
    ("jpeg:30-90", "jpeg:30-90"),
    ("camera-v1", NOISE_PRESETS["camera-v1"]),
    ("gaussian:5|camera-v1+jpeg:50@2", f"gaussian:5@1|{NOISE_PRESETS['camera-v1']}+jpeg:50@2"),
    ("camera:iso=800,zoom=1", "camera:iso=800,sharpen=0-0.5,blur=0.3-1,chroma=0-3,zoom=1,quality=75-98"),
    ("camera:50-100", "camera:iso=50-100,sharpen=0-0.5,blur=0.3-1,chroma=0-3,zoom=0.8-1.6,quality=75-98"),
    ("gaussian@2|speckle@2", "gaussian:0-55|speckle:5-50"),
    ("salt-pepper:0.00001", "salt-pepper:0.00001"),
])
def test_spec_strings_round_trip(spec, canonical):
    cfg = parse_noise_spec(spec)
    assert cfg.spec == canonical
    assert parse_spec(canonical) == parse_spec(spec)
    assert format_spec(parse_spec(canonical)) == canonical


def test_noise_config_survives_checkpoint_metadata_and_old_configs_still_load():
    run = RunConfig(noise=parse_noise_spec("camera|gaussian:5-50", quantize_prob=0.3))
    assert from_dict(RunConfig, to_dict(run)) == run
    old = {"noise": {"kind": "gaussian", "sigma_min": 0.0, "sigma_max": 75.0, "quantize_prob": 0.5}}
    assert from_dict(RunConfig, old).noise == NoiseConfig(spec="gaussian:0-75", quantize_prob=0.5)


@pytest.mark.parametrize("bad", ["poisson", "gaussian:x", "gaussian:50-5", "gaussian:1-2-3", "gaussian:-5",
                                 "jpeg:30.5", "jpeg:0-50", "camera:3", "gaussian:sigma=1,2", "gaussian:foo=3",
                                 "gaussian|", "gaussian@0", "correlated:1,2,3", "gaussian:3,", "", "salt-pepper:2"])
def test_bad_specs_are_rejected_with_a_message(bad):
    with pytest.raises(ValueError, match=r"\S"):
        parse_noise_spec(bad)


def test_every_kind_has_defaults_and_help():
    assert set(OPS) == set(NOISE_DEFAULTS)
    assert set(NOISE_KINDS) == set(OPS) | set(NOISE_PRESETS)
    for kind in NOISE_KINDS:
        parse_spec(kind)  # each default range is valid


def test_protocol_noise_is_clipped_rounded_and_seeded():
    clean = np.full((64, 64, 1), 128, np.uint8)
    a = protocol_noisy_uint8(clean, 25, seed=7)
    assert a.dtype == np.uint8 and np.array_equal(a, protocol_noisy_uint8(clean, 25, seed=7))
    assert abs(a.astype(float).std() - 25) < 2


def test_add_gaussian_broadcasts_one_sigma_per_sample():
    clean = torch.zeros(2, 1, 64, 64)
    out = add_gaussian(clean, torch.tensor([0.0, 30.0]), torch.Generator().manual_seed(0))
    assert out[0].abs().max() == 0 and abs(out[1].std().item() * 255 - 30) < 1.5


@gpu
def test_noise_is_made_on_the_gpu_with_a_gpu_generator():
    clean = _levels(size=256).cuda()
    gen = torch.Generator("cuda").manual_seed(0)
    cfg = NoiseConfig(spec="poisson-gaussian:shot=20,read=10", quantize_prob=0.0)
    noisy = synthesize(clean, cfg, gen)
    assert noisy.device.type == "cuda"
    var = ((noisy - clean).double() * 255).var(dim=(1, 2, 3)).cpu().numpy()
    slope, intercept = np.polyfit(clean[:, 0, 0, 0].double().cpu().numpy() * 255, var, 1)
    assert abs(slope - 400 / 255) / (400 / 255) < 0.05 and abs(intercept - 100) / 100 < 0.05
    cam = NoiseConfig(spec="camera|gaussian:0-55|speckle+salt-pepper")
    x = torch.rand(8, 3, 64, 64, device="cuda")
    a = synthesize(x, cam, torch.Generator("cuda").manual_seed(1))
    b = synthesize(x, cam, torch.Generator("cuda").manual_seed(1))
    assert a.device.type == "cuda" and torch.equal(a, b)
