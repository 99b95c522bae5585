"""Camera noise made the way a camera makes it: in raw, per Bayer site, then the camera's processing.

Real photo noise is not white Gaussian noise in sRGB. A sensor adds shot and read noise to
linear raw values at each Bayer site; the camera then demosaics (colour-difference
interpolation copies green's noise into red and blue), white-balances, mixes the colours,
applies a tone curve (which amplifies the shadows' noise), smooths chroma, sharpens, may
resize, and writes a JPEG with 4:2:0 chroma subsampling. That is what makes real noise
coloured, blotchy and brightness-dependent.

The pipeline follows "Unprocessing Images for Learned Raw Denoising" (Brooks et al., CVPR
2019): sRGB is taken back to raw through an inverse tone curve, inverse colour
matrix and inverse white balance; shot and read noise are drawn jointly (log read variance
is linear in log shot variance, their fit to real sensors), with the shot level set by an ISO
drawn log-uniformly; the noisy raw is processed forward again. CBDNet (Guo et al., CVPR 2019)
and SCUNet (Zhang et al., 2023) add the in-camera demosaicing, resizing and JPEG steps.

The noisy image is the clean one plus the difference the raw noise makes to the processed
image, P(raw + noise) - P(raw). So the demosaicing artefacts of the clean image cancel: a user's
photo is already demosaiced, and the model must not learn to "undo" that. Every step but JPEG
is a batched torch op drawing from the caller's generator, so it runs on the training device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from denoiser.core.noise.ops import jpeg
from denoiser.core.noise.spec import Op

# Shot-noise variance (linear raw in [0, 1]) per unit intensity at ISO 100; proportional to ISO.
# Brooks et al.'s range, 1e-4 to 0.012, is ISO 100 to 12 000 on this scale.
SHOT_AT_ISO100 = 1e-4
# Their fit over real cameras: log(read var) = 2.18 log(shot var) + 1.20 + N(0, 0.26).
READ_SLOPE, READ_OFFSET, READ_SPREAD = 2.18, 1.20, 0.26
RED_GAIN, BLUE_GAIN = (1.9, 2.4), (1.5, 1.9)  # white-balance gains (Brooks et al.)
# The tone curve: a power law y = l ** (1 / gamma), gamma drawn per sample. 2.2 is sRGB's; phones
# and cameras lift shadows further, which is why their dark noise exceeds their bright noise.
TONE_GAMMA = (2.2, 4.0)
LUMA = (0.299, 0.587, 0.114)  # BT.601, as JPEG's YCbCr uses


def _uniform(lo: float, hi: float, n: int, gen: torch.Generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def iso_to_noise(iso: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(shot, read) raw variances for each ISO: shot linear in ISO, read drawn around its fit."""
    shot = SHOT_AT_ISO100 * iso / 100.0
    jitter = torch.randn(iso.shape, generator=gen, device=iso.device) * READ_SPREAD
    read = torch.exp(READ_SLOPE * torch.log(shot) + READ_OFFSET + jitter)
    return shot, read


def raw_noise(raw: torch.Tensor, shot: torch.Tensor, read: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Heteroscedastic Gaussian sensor noise: variance shot * intensity + read, per sample (B,)."""
    var = shot.view(-1, 1, 1, 1) * raw.clamp_min(0) + read.view(-1, 1, 1, 1)
    return torch.randn(raw.shape, generator=gen, device=raw.device, dtype=raw.dtype) * var.sqrt()


def random_ccm(n: int, gen: torch.Generator, device) -> torch.Tensor:
    """(n, 3, 3) camera-to-sRGB matrices: rows sum to 1 (white stays white), diagonal 1.3-2.0.

    Strictly diagonally dominant, hence invertible: the inverse is the sRGB-to-camera step.
    """
    diag = _uniform(0.3, 1.0, 3 * n, gen, device).view(n, 3)
    share = _uniform(0.2, 0.8, 6 * n, gen, device).view(n, 3, 2)
    share = share / share.sum(-1, keepdim=True) * diag.unsqueeze(-1)  # off-diagonals sum to the excess
    m = torch.diag_embed(1 + diag)
    idx = torch.tensor([[1, 2], [0, 2], [0, 1]], device=device)
    m.scatter_(2, idx.expand(n, 3, 2), -share)
    return m


def _mix(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij,bjhw->bihw", m, x)


def bayer_masks(b: int, h: int, w: int, phase: torch.Tensor) -> torch.Tensor:
    """(b, 3, h, w) 0/1 masks of the R, G, B sites of an RGGB mosaic shifted by phase (b, 2)."""
    device = phase.device
    yy = (torch.arange(h, device=device).view(1, h, 1) + phase[:, 0].view(-1, 1, 1)) % 2
    xx = (torch.arange(w, device=device).view(1, 1, w) + phase[:, 1].view(-1, 1, 1)) % 2
    r = (yy == 0) & (xx == 0)
    bl = (yy == 1) & (xx == 1)
    return torch.stack([r, ~(r | bl), bl], 1).float()


def _conv3(x: torch.Tensor, k: list[list[float]]) -> torch.Tensor:
    kern = torch.tensor(k, device=x.device, dtype=x.dtype).view(1, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kern)


def demosaic(mosaic: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Colour-difference bilinear demosaicing of (B, 1, H, W) with even H, W: green first, then
    red and blue as green plus the interpolated R-G and B-G differences, as camera demosaicers do."""
    mg = masks[:, 1:2]
    g = mosaic * mg + _conv3(mosaic * mg, [[0, 1, 0], [1, 0, 1], [0, 1, 0]]) / 4 * (1 - mg)
    out = [None, g, None]
    for c in (0, 2):
        m = masks[:, c:c + 1]
        diff = _conv3((mosaic - g) * m, [[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
        out[c] = g + diff
    return torch.cat(out, 1)


def _gauss_blur(x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with a std per sample (B,); std 0 is a no-op."""
    b, c, h, w = x.shape
    r = max(1, math.ceil(3 * float(std.max())))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-(t**2) / (2 * std.view(-1, 1).to(x.dtype).clamp_min(1e-3) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c).view(b, c, h, w)


def _to_ycc(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    return torch.stack([y, (b - y) / 1.772, (r - y) / 1.402], 1)


def _from_ycc(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x.unbind(1)
    r, b = y + 1.402 * cr, y + 1.772 * cb
    g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    return torch.stack([r, g, b], 1)


def _camera_residual(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """P(raw + noise) - P(raw) for a (B, 3, H, W) sRGB batch with even H and W."""
    b, _, h, w = x.shape
    dev = x.device
    iso = torch.exp(_uniform(math.log(op.iso[0]), math.log(op.iso[1]), b, gen, dev))
    shot, read = iso_to_noise(iso, gen)
    ccm = random_ccm(b, gen, dev)
    gains = torch.stack([_uniform(*RED_GAIN, b, gen, dev), torch.ones(b, device=dev),
                         _uniform(*BLUE_GAIN, b, gen, dev)], 1).view(b, 3, 1, 1)
    phase = torch.randint(0, 2, (b, 2), generator=gen, device=dev)

    gamma = _uniform(*TONE_GAMMA, b, gen, dev).view(b, 1, 1, 1)
    linear = x.clamp(0, 1) ** gamma
    raw = (_mix(linear, torch.linalg.inv(ccm)) / gains).clamp(0, 1)
    masks = bayer_masks(b, h, w, phase)
    mosaic = (raw * masks).sum(1, keepdim=True)
    noisy_mosaic = mosaic + raw_noise(mosaic, shot, read, gen)

    def process(m: torch.Tensor) -> torch.Tensor:
        rgb = _mix(demosaic(m, masks) * gains, ccm).clamp(0, 1)
        return rgb.clamp_min(1e-8) ** (1 / gamma)

    d = process(noisy_mosaic) - process(mosaic)
    # Linear in-camera filters act on the difference alone: chroma noise reduction, smoothing, sharpening.
    ycc = _to_ycc(d)
    chroma = _gauss_blur(ycc[:, 1:], _uniform(*op.chroma, b, gen, dev))
    d = _from_ycc(torch.cat([ycc[:, :1], chroma], 1))
    d = _gauss_blur(d, _uniform(*op.blur, b, gen, dev))
    amount = _uniform(*op.sharpen, b, gen, dev).view(-1, 1, 1, 1)
    return d + amount * (d - _gauss_blur(d, torch.ones(b, device=dev)))


def camera(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """The noisy photo a camera would have made of the clean (B, C, H, W) batch, before its JPEG.

    C = 1 is a gray photo: made in colour, then converted to luma, as a camera's monochrome mode
    does. Resizing changes the grid, so its factor is drawn once per batch (not per sample): the
    noise is made on a sensor grid `zoom` times coarser than the image and resized to it.
    """
    b, c, h, w = x.shape
    rgb = x.expand(b, 3, h, w) if c == 1 else x
    zoom = math.exp(float(_uniform(math.log(op.zoom[0]), math.log(op.zoom[1]), 1, gen, x.device)))
    sh, sw = max(2, 2 * round(h / zoom / 2)), max(2, 2 * round(w / zoom / 2))  # even: whole Bayer cells
    sensor = rgb if (sh, sw) == (h, w) else F.interpolate(rgb, (sh, sw), mode="bilinear", antialias=True,
                                                             align_corners=False)
    d = _camera_residual(sensor.float(), op, gen)
    if (sh, sw) != (h, w):
        d = F.interpolate(d, (h, w), mode="bilinear", antialias=True, align_corners=False)
    if c == 1:
        d = sum(k * d[:, i:i + 1] for i, k in enumerate(LUMA))
    return x + d.to(x.dtype)


def camera_jpeg(x: torch.Tensor, op: Op, gen: torch.Generator) -> torch.Tensor:
    """The `camera` kind: the pipeline above, then the camera's JPEG encoder at `op.quality`."""
    return jpeg(camera(x, op, gen), op, gen)
