"""Lower an FP32 ONNX export to FP16 or to INT8 with explicit Q/DQ nodes, at graph level.

FP16: the convolutions, ReLUs and concats (all the arithmetic) run in float16; the image
path stays float32: the input, its edge padding, the residual subtraction
`output = input - predicted_noise` and the final crop. So the output is the exact input
minus a float16 noise estimate, instead of an image rounded to float16 (2^-11 steps near
white). Inputs and outputs stay float32, so callers never see the difference.

INT8: ONNX Runtime's `quantize_static` in QDQ format, calibrated on noisy crops of real
images, per-channel symmetric int8 weights. Q/DQ pairs feed only convolutions (the layers
TensorRT and ONNX Runtime run in int8); the residual subtraction, concats and the crop read
float tensors. Two targets, because the two runtimes want different files:
  tensorrt: int8 activations, symmetric (every zero point 0: TensorRT refuses others),
            float biases (TensorRT fuses them itself);
  cpu:      uint8 activations with zero points (ONNX Runtime's fastest CPU kernels), int32
            biases (what its QLinearConv fusion needs), weights as wide as the CPU allows:
            full 8-bit where it has VNNI (cpu_features.py), 7-bit (`reduce_range`) where it
            lacks it: x86 CPUs without VNNI multiply u8 x s8 in int16 pairs that saturate
            with 8-bit weights (measured on an AVX2 EPYC: 0.98 dB lost with 8-bit weights,
            0.25 dB with 7-bit ones). TensorRT cannot build this one.
Mixed precision: `find_sensitive_layers` finds the convolutions whose quantization costs
most and keeps them out of INT8 (`nodes_to_exclude`): in float16 for TensorRT (the sensitive
layers are the full-resolution ones, which carry most of the arithmetic: float32 there
would make the INT8 engine slower than the FP16 one), in float32 for the CPU (whose float16
convolutions are slower than float32 ones).

Named "lower" (one precision down the ladder), not "quantize": that word also means the
8-bit rounding of images (imageio.to_uint8, noise.ops.round_to_8bit) and the INT8 precision itself.
Files are written atomically (core/atomic.py): an interrupted lowering leaves no half a file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from denoiser.core.atomic import atomic_write
from denoiser.core.config import CALIBRATION_METHODS, INT8_TARGETS
from denoiser.core.noise.ops import protocol_noisy_uint8
from denoiser.deploy.quiet import third_party_quiet

FP16_OPS = ("Conv", "ConvTranspose", "Relu", "Concat")
QUANT_OPS = ("Conv", "ConvTranspose")


def _float_tensors(model) -> set[str]:
    """Names of every float32 tensor in the graph (inputs, initializers, inferred values)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    floats = {t.name for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            floats.add(vi.name)
    return floats


def convert_fp16(src: str | Path, dst: str | Path, keep_fp32: Sequence[str] = (),
                 only: Sequence[str] | None = None) -> dict:
    """Write an FP16 copy of the FP32 ONNX file `src` to `dst` (float32 I/O); return what
    ran where. `keep_fp32`: node names to keep in float32 besides the image path. `only`:
    convert just these convolutions (and the ReLUs right after them), leave the rest as is."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    floats = _float_tensors(model)
    g = model.graph
    if only is not None:
        outs = {o for n in g.node if n.name in only for o in n.output}
        only = set(only) | {n.name for n in g.node if n.op_type == "Relu" and n.input[0] in outs}
    half = [n for n in g.node if n.op_type in FP16_OPS and n.name not in keep_fp32
            and n.input and n.input[0] in floats and (only is None or n.name in only)]
    half_names = {n.name for n in half}
    produced_half = {o for n in half for o in n.output if o in floats}
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    new_nodes, casts_in = [], {}
    for n in g.node:
        if n.name in half_names:
            for k, name in enumerate(n.input):
                if name not in floats or name in produced_half:
                    continue
                if name in inits and all(c.name in half_names for c in consumers[name]):
                    t = inits[name]  # weights used only in float16: store them as float16
                    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), name))
                    continue
                if name not in casts_in:  # one cast per float32 tensor entering the float16 region
                    casts_in[name] = f"{name}_fp16"
                    new_nodes.append(helper.make_node("Cast", [name], [casts_in[name]], name=f"{name}_to_fp16",
                                                      to=onnx.TensorProto.FLOAT16))
                n.input[k] = casts_in[name]
        new_nodes.append(n)
        outputs = {o.name for o in g.output}
        for o in n.output if n.name in half_names else ():
            if o not in floats:
                continue
            leaving = [c for c in consumers.get(o, []) if c.name not in half_names]
            if leaving or o in outputs:  # back to float32 where a float32 node or the output reads it
                new_nodes.append(helper.make_node("Cast", [f"{o}_fp16"], [o], name=f"{o}_to_fp32",
                                                  to=onnx.TensorProto.FLOAT))
                for c in consumers.get(o, []):
                    if c.name in half_names:
                        c.input[:] = [f"{o}_fp16" if i == o else i for i in c.input]
                n.output[:] = [f"{o}_fp16" if x == o else x for x in n.output]
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]  # stale float32 types; re-inferred by whoever needs them
    onnx.checker.check_model(model)
    atomic_write(dst, lambda tmp: onnx.save(model, str(tmp)))
    kept = sorted({n.op_type for n in g.node if n.name not in half_names and any(i in floats for i in n.input)}
                  - {"Cast", "Shape"})
    return {"fp16_nodes": len(half), "fp32_op_types": kept, "fp32_nodes": sorted(keep_fp32)}


def layer_names(path_or_model) -> dict[str, str]:
    """ONNX node name -> PyTorch layer name ("dec.1.0") for every convolution, read from the
    name of its weight, so reports name layers the way the model code does."""
    import onnx

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, Path)) else path_or_model
    return {n.name: n.input[1].removesuffix("_as_conv").removesuffix(".weight") for n in model.graph.node
            if n.op_type in QUANT_OPS and len(n.input) > 1}


def calibration_batches(images: list[np.ndarray], crops: int, crop: int, sigmas: Sequence[float],
                        seed: int, batch: int = 4, noise: str | None = None,
                        noise_share: float = 0.5) -> list[np.ndarray]:
    """Noisy float32 NCHW batches for calibration: random crops of clean uint8 (H, W, C)
    images (already in the model's channels), noise synthesized as the protocol says, with
    sigma cycling through `sigmas` (the range a user's uploads span).

    `noise`: a noise spec (core/noise/spec.py), e.g. the mix a model was trained on, for a
    `noise_share` of the crops, spread evenly, saved as 8-bit as users' files are.
    """
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(images))  # spread over the whole folder, not its first files
    out = []
    for i in range(crops):
        im = images[picks[i % len(images)]]
        h, w = im.shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        clean = np.ascontiguousarray(im[y:y + ch, x:x + cw])
        if clean.shape[:2] != (crop, crop):  # small image: replicate its edges up to the crop size
            clean = np.pad(clean, ((0, crop - ch), (0, crop - cw), (0, 0)), mode="edge")
        # crop i is the spec's when the running share passes a whole crop: evenly spread, exact count
        if noise and int((i + 1) * noise_share) > int(i * noise_share):
            out.append(_spec_noisy(clean, noise, seed * 100_003 + i))
            continue
        noisy = protocol_noisy_uint8(clean, float(sigmas[i % len(sigmas)]), seed * 100_003 + i)
        out.append(noisy.transpose(2, 0, 1).astype(np.float32) / 255.0)
    return [np.stack(out[i:i + batch]) for i in range(0, len(out), batch)]


def _spec_noisy(clean_u8: np.ndarray, spec: str, seed: int) -> np.ndarray:
    """(C, H, W) float32 in [0, 1]: `clean_u8` (H, W, C) with the spec's noise, rounded to 8 bits."""
    import torch

    from denoiser.core.config import NoiseConfig
    from denoiser.core.noise.ops import synthesize

    x = torch.from_numpy(clean_u8.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    noisy = synthesize(x, NoiseConfig(spec=spec, quantize_prob=1.0), torch.Generator().manual_seed(seed))
    return noisy[0].numpy()


class _Batches:
    """The CalibrationDataReader protocol over in-memory batches."""

    def __init__(self, batches: list[np.ndarray], input_name: str = "input"):
        self._it = iter([{input_name: b} for b in batches])
        self._n = len(batches)

    def get_next(self):
        return next(self._it, None)

    def __len__(self) -> int:
        return self._n


def quantize_int8(src: str | Path, dst: str | Path, target: str, batches: list[np.ndarray] | None = None,
                  exclude: Sequence[str] = (), method: str = "minmax", cache: str | Path | None = None,
                  weight_bits: int = 0) -> dict:
    """Write an INT8 Q/DQ copy of the FP32 ONNX file `src` to `dst`; return what was done.

    `weight_bits` (cpu target): 8 or 7; 0 = what this CPU runs exactly (cpu_features.py).

    `cache`: a calibration-range file; when it exists, `batches` are not needed (the
    sensitivity search re-quantizes with other exclusions from the same ranges).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if target not in INT8_TARGETS:
        raise ValueError(f"unknown INT8 target {target!r}; choose from {', '.join(INT8_TARGETS)}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    trt = target == "tensorrt"
    from denoiser.deploy.cpu_features import int8_weight_bits

    bits = 8 if trt else weight_bits or int8_weight_bits()
    if bits not in (7, 8):
        raise ValueError(f"INT8 weights are 7 or 8 bits, not {bits}")
    calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}[method]
    exclude, renamed = list(exclude), {}
    if not trt:  # up-sampling in int8 too (int8_graph.py); an excluded one stays float as its Conv
        from denoiser.deploy.int8_graph import block_upsample_as_conv

        graph = onnx.load(str(src))
        renamed = block_upsample_as_conv(graph)
        exclude = [renamed.get(n, n) for n in exclude]
    if trt:  # Q/DQ on conv inputs only (NVIDIA's placement): TensorRT fuses the rest itself
        ops, extra = list(QUANT_OPS), {"OpTypesToExcludeOutputQuantization": list(QUANT_OPS),
                                       "ActivationSymmetric": True, "QuantizeBias": False}
        quantized_readers = QUANT_OPS
    else:  # DQ -> Conv -> Q with the ReLU folded into Q: the pattern ONNX Runtime fuses to QLinearConv;
        # concats keep their Q/DQ too (fused to QLinearConcat: 17 of 21 convs run in int8, not 14)
        # DepthToSpace (int8_graph.py's up-sampling) only moves bytes: ONNX Runtime runs it on uint8
        ops, extra = [*QUANT_OPS, "Relu", "DepthToSpace"], {"ActivationSymmetric": False, "QuantizeBias": True}
        quantized_readers = (*QUANT_OPS, "Concat", "DepthToSpace")

    def write(tmp: Path) -> None:
        source = src
        if not trt and renamed:  # the rewritten FP32 graph, beside the temp file while it is needed
            source = tmp.with_name(tmp.name + ".fp32")
            onnx.save(graph, str(source))
        try:
            # reduce_range: 7-bit weights for the cpu target on CPUs without VNNI, see the module docstring.
            with third_party_quiet():  # its "consider pre-processing" notices are for its own developers
                quantize_static(
                    str(source), str(tmp), _Batches(batches) if batches is not None else None,
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=ops, per_channel=True,
                    reduce_range=bits == 7, activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude), calibrate_method=calib,
                    calibration_cache_path=str(cache) if cache else None,
                    extra_options={**extra, "WeightSymmetric": True, "CalibPercentile": 99.999})
        finally:
            if source != src:
                Path(source).unlink(missing_ok=True)
        model = onnx.load(str(tmp))
        # Excluded convs read float tensors again for TensorRT. Not for the cpu target: there
        # ONNX Runtime folded each ReLU into the Q after its conv, so the float tensor is the
        # conv's output before the ReLU; the DQ output (clamped by Q) is the right input.
        done["rewired"] = _restore_float_inputs(model, quantized_readers, exclude if trt else (),
                                                int8_sums_of=() if trt else ops)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        if trt and exclude:  # the layers kept out of INT8 run in float16 (see the module docstring)
            convert_fp16(tmp, tmp, only=exclude)

    done: dict = {}
    atomic_write(dst, write)
    return {"target": target, "activations": "int8 symmetric" if trt else "uint8 asymmetric",
            "weights": "int8 symmetric, per output channel" + (", 7-bit range (reduce_range)" if bits == 7 else ""),
            "weight_bits": bits,
            "biases": "float32" if trt else "int32",
            "calibration_method": method, "float_inputs_restored": done["rewired"], "float_nodes": sorted(exclude),
            "float_precision": "fp16" if trt else "fp32"}


def _restore_float_inputs(model, quantized_readers: Sequence[str], exclude: Sequence[str] = (),
                          int8_sums_of: Sequence[str] = ()) -> int:
    """Give every other reader of a Q/DQ'd activation (and every excluded node) the float
    tensor back (the residual subtraction must read the exact input, not its 8-bit version);
    drop the pairs left unread.

    Except an Add of a tensor that comes out of one of `int8_sums_of` (the cpu target's
    quantized ops): it keeps the dequantized 8-bit tensor. Given the float one, the producer's
    Q would go unread and ONNX Runtime would run the producer in float: every residual block's
    second conv, whose output only the block's Add reads (in the v2 network 14 of 35
    convolutions, 65 % of the INT8 file's time). An Add sums inside the network, where later
    layers filter its rounding; the output's Sub (image - noise estimate) still reads float.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for dq in [n for n in g.node if n.op_type == "DequantizeLinear"]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight: stored as an int8 initializer
        source = producer.get(q.input[0])
        int8_source = source is not None and source.op_type in int8_sums_of
        for n in g.node:
            keeps_8bit = n.op_type in quantized_readers or (n.op_type == "Add" and int8_source)
            if dq.output[0] in n.input and (n.name in exclude or not keeps_8bit):
                n.input[:] = [q.input[0] if i == dq.output[0] else i for i in n.input]
                rewired += 1
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for _ in range(2):  # DQ first, then the Q that fed only it
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in read]
        for n in dead:
            g.node.remove(n)
        read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    unused = [t for t in g.initializer if t.name not in read]  # their scales and zero points
    for t in unused:
        g.initializer.remove(t)
    return rewired


def zero_points(path_or_model) -> dict[str, np.ndarray]:
    """Every zero-point initializer of a Q/DQ graph, by name (TensorRT needs them all 0)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, Path)) else path_or_model
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits:
            out[n.input[2]] = numpy_helper.to_array(inits[n.input[2]])
    return out


def find_sensitive_layers(src: str | Path, target: str, batches: list[np.ndarray], loss_db: Callable[[Path], float],
                          budget_db: float, method: str = "minmax", max_layers: int = 6,
                          always: tuple[str, ...] = (), weight_bits: int = 0) -> tuple[list[str], list[dict]]:
    """Convolutions to keep out of INT8 so that it loses at most `budget_db`.

    `loss_db(path)` measures a quantized file (PSNR drop against FP32 on a tuning set that is
    not the reported check set). First every convolution is left out alone to see what its
    quantization costs; then the costliest are kept in float, one by one, until the loss is
    within budget or `max_layers` are kept (the best of those trials wins: adding a layer
    can cost a little). `always` (node names: the layers the architecture keeps in float) are
    left out of INT8 in every trial. Returns (node names, every trial's result).
    """
    import onnx

    names = layer_names(onnx.load(str(src)))
    trials: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="denoiser-int8-") as tmp:
        cache, path = Path(tmp) / "ranges.json", Path(tmp) / "trial.onnx"

        def trial(exclude: list[str]) -> float:
            exclude = [*always, *(n for n in exclude if n not in always)]
            quantize_int8(src, path, target, batches, exclude, method, cache, weight_bits)
            loss = loss_db(path)
            trials.append({"float_layers": [names[n] for n in exclude], "loss_db": round(loss, 4)})
            return loss

        if trial([]) <= budget_db:
            return list(always), trials
        gain = {n: trial([n]) for n in names if n not in always}
        order = sorted(gain, key=gain.get)  # smallest loss when left out of INT8 first
        best: tuple[float, list[str]] = (float("inf"), [])
        for k in range(1, max_layers + 1):
            loss = trial(order[:k])
            best = min(best, (loss, [*always, *order[:k]]), key=lambda b: b[0])
            if loss <= budget_db:
                break
    return best[1], trials
