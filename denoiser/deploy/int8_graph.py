"""Exact rewrites of an FP32 ONNX graph that let ONNX Runtime's CPU run all of it in int8.

ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv (u8 x s8, VNNI where the CPU has it), but
has no int8 kernel for ConvTranspose: a quantized U-Net ran its up-sampling in float between a
DequantizeLinear and a QuantizeLinear, plus layout transposes around it (measured on the
shipped model at 512x512: 21 % of the time in ConvTranspose, 16 % in Transpose).

A ConvTranspose whose kernel equals its stride (no overlap: each input pixel writes its own
k x k block) is the same function as a 1x1 Conv to k*k times the channels followed by
DepthToSpace. Both of those run in int8 (QLinearConv, and DepthToSpace only moves bytes). The
rewrite is exact in float arithmetic: every output is the same sum of the same products.
"""

from __future__ import annotations

import numpy as np


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _is_block_upsample(node, weight: np.ndarray) -> bool:
    """A ConvTranspose with kernel == stride, no padding, dilation 1, one group."""
    a = _attrs(node)
    k = list(weight.shape[2:])
    return (node.op_type == "ConvTranspose" and len(k) == 2 and list(a.get("strides", [1, 1])) == k
            and list(a.get("kernel_shape", k)) == k and not any(a.get("pads", [0] * 4))
            and not any(a.get("output_padding", [0, 0])) and a.get("group", 1) == 1
            and all(d == 1 for d in a.get("dilations", [1, 1])) and "output_shape" not in a
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET") and k[0] == k[1])


def block_upsample_as_conv(model) -> dict[str, str]:
    """Replace every kernel == stride ConvTranspose of `model` (in place) by Conv 1x1 +
    DepthToSpace; return {ConvTranspose node name: its Conv's name}.

    ConvTranspose weight W (Cin, Cout, k, k): out[c, k*y + i, k*x + j] = b[c] + sum_cin
    W[cin, c, i, j] * in[cin, y, x]. DepthToSpace in DCR mode reads channel (i*k + j)*Cout + c
    into that place, so the 1x1 Conv's weight row (i*k + j)*Cout + c is W[:, c, i, j].
    """
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    replaced: dict[str, str] = {}
    for idx, node in enumerate(list(g.node)):
        if node.op_type != "ConvTranspose" or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if not _is_block_upsample(node, w):
            continue
        cin, cout, k, _ = w.shape
        w_conv = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k * k * cout, cin, 1, 1))
        name = node.name or f"upsample_{idx}"
        w_name = f"{node.input[1]}_as_conv"
        g.initializer.append(numpy_helper.from_array(w_conv.astype(w.dtype), w_name))
        inputs = [node.input[0], w_name]
        if len(node.input) > 2 and node.input[2]:
            b = numpy_helper.to_array(inits[node.input[2]])
            b_name = f"{node.input[2]}_as_conv"
            g.initializer.append(numpy_helper.from_array(np.tile(b, k * k).astype(b.dtype), b_name))
            inputs.append(b_name)
        mid = f"{node.output[0]}_blocks"
        conv = helper.make_node("Conv", inputs, [mid], name=f"{name}_conv", kernel_shape=[1, 1])
        d2s = helper.make_node("DepthToSpace", [mid], list(node.output), name=f"{name}_d2s", blocksize=k, mode="DCR")
        pos = list(g.node).index(node)
        g.node.remove(node)
        g.node.insert(pos, d2s)
        g.node.insert(pos, conv)
        replaced[node.name] = conv.name
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    onnx.checker.check_model(model)
    return replaced
