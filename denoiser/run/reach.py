"""How far a model sees: the tile margin the fast quality mode uses (quality.py).

A U-Net's receptive field is an upper bound on how far a pixel's output depends on its
context; the weights it learned mostly look much less far. Tiles whose margins are the
measured reach instead of the receptive field do less work for the same output (within a
quarter of an 8-bit step), which is what the INT8 fast mode trades for.
"""

from __future__ import annotations

import numpy as np

# Tile margins of the fast mode: the distance at which a pixel's output no longer changes by
# more than this when the context beyond it is cut off (a quarter of an 8-bit step).
REACH_TOLERANCE = 0.25 / 255


def measure_reach(run, channels: int, alignment: int, receptive_field: int, core: int = 32,
                  tolerance: float = REACH_TOLERANCE) -> int:
    """The smallest tile margin (a multiple of `alignment`, at most the receptive field rounded
    up) at which cutting the context off changes no output pixel by more than `tolerance`.

    Probes: the product's sample images (or procedural ones) made noisy at sigma 5, 25 and 50,
    a `core`-pixel square in the middle of each, run once with the full receptive field of
    context and then with each smaller margin. A tile's core sees exactly this cut-off (the
    model's own zero padding where the tile ends), so the margin holds for tiles of any size.
    """
    from denoiser.core.noise.ops import protocol_noisy_uint8
    from denoiser.deploy.imagecheck import sample_images, to_model_channels
    from denoiser.run.tiling import round_up

    full = round_up(receptive_field, alignment)
    side = core + 2 * full
    probes = []
    for i, (im, sigma) in enumerate(zip(to_model_channels(sample_images(), channels), (5.0, 25.0, 50.0))):
        h, w = im.shape[:2]
        y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
        crop = np.ascontiguousarray(im[y:y + side, x:x + side])
        if crop.shape[:2] != (side, side):
            crop = np.pad(crop, ((0, side - crop.shape[0]), (0, side - crop.shape[1]), (0, 0)), mode="reflect")
        noisy = protocol_noisy_uint8(crop, sigma, seed=i).astype(np.float32) / 255.0
        probes.append(np.ascontiguousarray(noisy.transpose(2, 0, 1))[None])
    refs = [run(p)[..., full:full + core, full:full + core] for p in probes]
    reach = full
    for margin in range(full - alignment, -1, -alignment):  # shrink while every probe still agrees
        cut = slice(full - margin, full + core + margin)
        worst = max(float(np.abs(run(np.ascontiguousarray(p[..., cut, cut]))[..., margin:margin + core,
                                                                           margin:margin + core] - r).max())
                    for p, r in zip(probes, refs))
        if worst > tolerance:
            break
        reach = margin
    return max(reach, alignment)
