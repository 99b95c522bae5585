"""Image quality metrics on tensors in [0, 1]: PSNR and SSIM (Gaussian window, as Wang et al.)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB for batches (B, C, H, W); identical images give +inf."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM for batches (B, C, H, W), 11x11 Gaussian window (sigma 1.5)."""
    x, y = x.float(), y.float()
    c = x.shape[1]
    win = _gaussian_window(11, 1.5, c, x.device, x.dtype)
    mu_x = F.conv2d(x, win, groups=c)
    mu_y = F.conv2d(y, win, groups=c)
    sxx = F.conv2d(x * x, win, groups=c) - mu_x**2
    syy = F.conv2d(y * y, win, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, win, groups=c) - mu_x * mu_y
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


# Losses. Charbonnier is a smooth L1 (differentiable at 0), common in restoration; an SSIM
# term can be added because PSNR-optimal outputs look slightly flat.
def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y).pow(2) + eps * eps).mean()


LOSSES = {
    "l1": lambda x, y: F.l1_loss(x, y),
    "l2": lambda x, y: F.mse_loss(x, y),
    "charbonnier": charbonnier,
}


def training_loss(name: str, ssim_weight: float, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss = LOSSES[name](out.float(), target.float())
    if ssim_weight > 0:
        loss = loss + ssim_weight * (1 - ssim(out, target).mean())
    return loss
