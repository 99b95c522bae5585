"""Build strongly typed TensorRT engines from exported ONNX files, and run them.

Two libraries can do it: regular TensorRT (`tensorrt`, builds for the GPU it runs on, so it
needs one) and TensorRT for RTX (`tensorrt_rtx`, builds ahead of time for a list of compute
capabilities, with or without a GPU). Both get the same strongly typed network: precision
comes from the ONNX graph itself (FP16 graph, INT8 Q/DQ nodes), never from builder flags.

An engine is only valid for the TensorRT release that built it (and, for regular TensorRT,
the GPU it was built on), so every engine gets a JSON sidecar (`OUT.engine.json`) and is
checked against it before it is loaded. Neither library is imported at module import time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

from denoiser.core.atomic import atomic_write_pair, file_sha256, sidecar_path
from denoiser.core.config import EngineProfile
from denoiser.core.metadata import (
    ENGINE_FORMAT,
    EngineSidecar,
    ExportSidecar,
    MetadataError,
    read_sidecar,
)
from denoiser.deploy.export import INPUT_NAME

log = logging.getLogger(__name__)
REBUILD_HINT = "rebuild it with `denoiser export MODEL --engine OUT.engine`"


def import_tensorrt() -> tuple[Any, str]:
    """Return (module, flavour): `tensorrt` if importable, else `tensorrt_rtx`."""
    try:
        import tensorrt

        return tensorrt, "tensorrt"
    except ImportError:
        pass
    try:
        import tensorrt_rtx

        return tensorrt_rtx, "tensorrt-rtx"
    except ImportError:
        raise RuntimeError("TensorRT is not installed: `pip install denoiser[rtx]` (TensorRT for RTX, "
                           "builds without a GPU) or `pip install denoiser[tensorrt]` (regular TensorRT)") from None


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps error messages (so exceptions can quote them) and sends
    warnings to Python logging instead of stderr."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):  # called by TensorRT from C++
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
            elif int(severity) == int(trt.ILogger.Severity.WARNING):
                log.warning("TensorRT: %s", msg)

    return Logger()


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def _compute_capabilities(trt: Any, flavour: str, wanted: Sequence[str] | None) -> list[Any] | None:
    """Map names like "SM86", "sm_86", "8.6" or "current" to ComputeCapability values."""
    if wanted is None:
        return None  # the library's default targets
    if flavour != "tensorrt-rtx":
        raise ValueError("compute_capabilities is a TensorRT-RTX option; regular TensorRT builds for "
                         "the GPU it runs on")
    out = []
    for name in wanted:
        key = str(name).upper().replace("_", "").replace(".", "")
        key = key if key.startswith("SM") or key == "CURRENT" else "SM" + key
        if key == "CURRENT" and _gpu_name() is None:
            raise ValueError("compute capability 'current' needs a CUDA GPU; name targets such as SM86")
        if key == "NONE" or not hasattr(trt.ComputeCapability, key):
            known = [k for k in trt.ComputeCapability.__members__ if k != "NONE"]
            raise ValueError(f"unknown compute capability {name!r}; known: {', '.join(known)}")
        out.append(getattr(trt.ComputeCapability, key))
    if not out or (len(out) > 1 and trt.ComputeCapability.CURRENT in out):
        raise ValueError("compute_capabilities: give one or more targets ('current' only on its own)")
    return out


def _onnx_side(onnx_path: Path, onnx_sha: str) -> ExportSidecar | None:
    """The ONNX file's sidecar, if there is one and it describes this very file (same sha256)."""
    try:
        side = read_sidecar(onnx_path, ExportSidecar)
    except (OSError, MetadataError):  # none, or not one of ours: the engine just learns less
        return None
    return side if side.sha256 in (None, onnx_sha) else None


def build_engine(onnx_path: str | Path, engine_path: str | Path, profile: EngineProfile = EngineProfile(),
                 workspace_mb: int = 1024, compute_capabilities: Sequence[str] | None = None) -> dict:
    """Compile `onnx_path` into a strongly typed engine at `engine_path`; write and return its sidecar."""
    trt, flavour = import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if workspace_mb < 1:
        raise ValueError(f"workspace_mb must be >= 1, got {workspace_mb}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    targets = _compute_capabilities(trt, flavour, compute_capabilities)
    if flavour == "tensorrt" and _gpu_name() is None:
        raise RuntimeError("regular TensorRT needs a CUDA GPU to build an engine; TensorRT for RTX "
                           "(`pip install denoiser[rtx]`) can build without one")

    t0 = time.time()
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    # Strongly typed: TensorRT 10 needs the flag; TensorRT 11 and TensorRT-RTX are always
    # strongly typed and accept (ignore) it, so setting it is right everywhere it exists.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n  " + "\n  ".join(errors))
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    if [t.name for t in inputs] != [INPUT_NAME] or len(inputs[0].shape) != 4:
        raise ValueError(f"{onnx_path}: expected one NCHW input named {INPUT_NAME!r}, got "
                         f"{[(t.name, tuple(t.shape)) for t in inputs]} (export it with `denoiser export`)")
    channels = inputs[0].shape[1]
    if channels < 1:
        raise ValueError(f"{onnx_path}: the channel dimension of {INPUT_NAME!r} must be fixed")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *profile.shapes(channels))
    config.add_optimization_profile(opt_profile)
    if targets is not None:
        # TensorRT-RTX: an empty list means its default targets; otherwise size it, then fill it.
        config.num_compute_capabilities = len(targets)
        for i, cc in enumerate(targets):
            if not config.set_compute_capability(cc, i):
                raise RuntimeError(f"TensorRT-RTX refused compute capability {cc.name}")
    built = [config.get_compute_capability(i).name for i in range(config.num_compute_capabilities)] \
        if hasattr(config, "num_compute_capabilities") else None

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}:\n  "
                           + "\n  ".join(logger.errors or ["(no error message; see the log above)"]))
    engine = bytes(serialized)

    onnx_sha = file_sha256(onnx_path)
    onnx_side = _onnx_side(onnx_path, onnx_sha)
    side = {
        "format": ENGINE_FORMAT,
        "file": engine_path.name,
        "bytes": len(engine),
        "flavour": flavour,
        "tensorrt_version": trt.__version__,
        "precision": (onnx_side.precision if onnx_side else None) or "unknown",
        "profile": dataclasses.asdict(profile),
        "channels": int(channels),
        "workspace_mb": int(workspace_mb),
        # [] with TensorRT-RTX = its default targets; None = regular TensorRT (this GPU only).
        "compute_capabilities": built,
        "onnx": {"file": onnx_path.name, "sha256": onnx_sha},
        "build_seconds": round(time.time() - t0, 3),
        "gpu": _gpu_name(),
    }
    # Carry the model description along, so an engine can be loaded without its ONNX file,
    # and where it came from, so a stale engine's error can say how to rebuild it.
    carried = onnx_side.to_dict() if onnx_side else {}
    side.update({k: carried[k] for k in ("model", "alignment", "receptive_field", "activation_bytes_per_pixel",
                                           "int8_target", "float_layers", "float_precision", "source")
                 if k in carried})
    text = json.dumps(side, indent=2)

    def write(tmp: Path) -> None:
        tmp.write_bytes(engine)
        sidecar_path(tmp).write_bytes(text.encode())

    atomic_write_pair(engine_path, write)  # the sidecar lands last: it marks the engine complete
    return json.loads(text)  # exactly what a later read of the sidecar gives (lists, not tuples)


def read_engine_sidecar(engine_path: str | Path) -> dict:
    """`read_engine_meta` as the plain JSON object."""
    return read_engine_meta(engine_path).to_dict()


def read_engine_meta(engine_path: str | Path) -> EngineSidecar:
    side = sidecar_path(engine_path)
    if not side.exists():
        raise RuntimeError(f"{engine_path}: no sidecar {side.name}, so its TensorRT version and GPU are "
                           f"unknown; {REBUILD_HINT}")
    return read_sidecar(engine_path, EngineSidecar)


def check_engine_compatible(engine_path: str | Path) -> None:
    """Raise if the engine was built by another TensorRT (flavour/version) or for another GPU."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise FileNotFoundError(f"engine not found: {engine_path}")
    side = read_engine_meta(engine_path)
    trt, flavour = import_tensorrt()
    problems = []
    if side.bytes not in (None, engine_path.stat().st_size):
        problems.append("the sidecar describes a different file (size differs)")
    if side.flavour != flavour:
        problems.append(f"built with {side.flavour}, but {flavour} is installed")
    elif side.tensorrt_version != trt.__version__:
        problems.append(f"built with {flavour} {side.tensorrt_version}, but {trt.__version__} "
                        "is installed")
    if flavour == "tensorrt" and not problems:
        gpu = _gpu_name()  # regular TensorRT engines only run on the GPU model they were built on
        if gpu is None:
            problems.append("no CUDA GPU is available to run it")
        elif side.gpu != gpu:
            problems.append(f"built for GPU {side.gpu!r}, but this one is {gpu!r}")
    if flavour == "tensorrt-rtx" and not problems and _gpu_name() is not None:
        # TensorRT-RTX (1.1+) reads just the engine header and says if this GPU/driver can run it.
        runtime = trt.Runtime(_make_logger(trt))
        if hasattr(runtime, "get_engine_validity"):
            with open(engine_path, "rb") as f:
                header = f.read(getattr(runtime, "engine_header_size", 0) or -1)
            validity, flags = runtime.get_engine_validity(header)
            if validity == trt.EngineValidity.INVALID:
                why = [k for k, v in trt.EngineInvalidityDiagnostics.__members__.items() if int(flags) & int(v)]
                problems.append(f"TensorRT-RTX says it cannot run on this GPU/driver ({', '.join(why) or flags}; "
                                f"built for {side.compute_capabilities or 'its default targets'})")
    if problems:
        raise RuntimeError(f"engine {engine_path} cannot be used here: {'; '.join(problems)}. "
                           f"Rebuild it here: `{rebuild_command(engine_path, side)}`"
                           + ("" if not _beside_onnx(engine_path, side) else
                              " (or, in Python, denoiser.deploy.tensorrt.rebuild_engine(path) from the ONNX file beside it)"))


def rebuild_command(engine_path: str | Path, side: EngineSidecar | dict) -> str:
    """The `denoiser export` command line that rebuilds this engine with its own settings."""
    engine_path = Path(engine_path)
    side = EngineSidecar.from_dict(side, sidecar_path(engine_path)) if isinstance(side, dict) else side
    profile = side.engine_profile()
    onnx_file = engine_path.with_name((side.onnx and side.onnx.file) or engine_path.stem + ".onnx")
    precision = side.precision if side.precision in ("fp32", "fp16", "int8") else "fp32"
    hw = lambda t: f"{t[0]}x{t[1]}"  # noqa: E731
    parts = ["denoiser export", str((side.source and side.source.checkpoint) or "MODEL.safetensors"),
             f"--precision {precision}", f"-o {onnx_file}", f"--engine {engine_path}",
             f"--min-hw {hw(profile.min_hw)} --opt-hw {hw(profile.opt_hw)} --max-hw {hw(profile.max_hw)}",
             f"--min-batch {profile.min_batch} --opt-batch {profile.opt_batch} --max-batch {profile.max_batch}",
             f"--workspace-mb {side.workspace_mb or 1024}"]
    if side.compute_capabilities:
        parts.append(f"--compute-capabilities {','.join(side.compute_capabilities)}")
    return " ".join(parts)


def _beside_onnx(engine_path: Path, side: EngineSidecar) -> Path | None:
    """The ONNX file the engine was built from, if it sits beside it unchanged."""
    if side.onnx is None or not side.onnx.file:
        return None
    path = Path(engine_path).with_name(side.onnx.file)
    return path if path.is_file() and file_sha256(path) == side.onnx.sha256 else None


def rebuild_engine(engine_path: str | Path) -> dict:
    """Rebuild a stale engine from the ONNX file beside it, with the settings it was built with."""
    engine_path = Path(engine_path)
    side = read_engine_meta(engine_path)
    onnx_path = _beside_onnx(engine_path, side)
    if onnx_path is None:
        raise RuntimeError(f"cannot rebuild {engine_path}: its ONNX file {side.onnx and side.onnx.file!r} is not "
                           f"beside it (or was changed); run `{rebuild_command(engine_path, side)}`")
    trt, flavour = import_tensorrt()
    targets = side.compute_capabilities if flavour == "tensorrt-rtx" else None
    return build_engine(onnx_path, engine_path, side.engine_profile(), side.workspace_mb or 1024, targets or None)


def fit_tile(tile: int, margin: int, alignment: int, profile: EngineProfile) -> int:
    """The largest aligned core tile <= `tile` whose input (core plus a margin on each side)
    fits the engine profile's largest height and width. Tiling calls it so tiles never
    leave the profile; inputs below the profile minimum are padded by the runner."""
    margin = math.ceil(margin / alignment) * alignment  # what tiling.denoise_tiled uses
    room = min(profile.max_hw) - 2 * margin
    fitted = min(tile, room) // alignment * alignment
    if fitted < alignment:
        raise ValueError(f"the engine profile's max {profile.max_hw[0]}x{profile.max_hw[1]} leaves no room for a tile "
                         f"inside the model's {margin}-pixel margins; rebuild the engine with --max-hw "
                         f"{2 * margin + 256}x{2 * margin + 256} or more")
    return fitted


def profile_padding(h: int, w: int, profile: EngineProfile) -> tuple[int, int]:
    """(bottom, right) edge padding that brings an h x w input up to the profile minimum."""
    if h > profile.max_hw[0] or w > profile.max_hw[1]:
        raise ValueError(f"{h}x{w} is over the engine profile's max {profile.max_hw[0]}x{profile.max_hw[1]}; "
                         "tile the image (Denoiser does) or rebuild the engine with a larger --max-hw")
    return max(0, profile.min_hw[0] - h), max(0, profile.min_hw[1] - w)


class TensorRTRunner:
    """Run an engine on CUDA: `runner(x)` with x a (B, C, H, W) float tensor (CPU or CUDA),
    returns float32 on CUDA.

    Any batch size (split into chunks of the profile's max batch) and any size up to the
    profile's max height/width (smaller inputs are edge-padded up to its minimum, and the
    padding is cropped off). Input and output buffers are reused across calls; work is
    enqueued on the runner's own CUDA stream.
    """

    def __init__(self, engine_path: str | Path, device: str | int = "cuda"):
        import torch

        check_engine_compatible(engine_path)
        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT engines need a CUDA GPU; use the torch or onnxruntime backend")
        trt, self.flavour = import_tensorrt()
        self.engine_path = Path(engine_path)
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.meta = read_engine_meta(engine_path)
        self._logger = _make_logger(trt)  # TensorRT keeps a pointer: it must outlive the engine
        with torch.cuda.device(self.device):
            # TensorRT works in the thread's current CUDA context: let torch create (and make
            # current) the device's primary context first, by creating the stream we run on.
            self._stream = torch.cuda.Stream(self.device)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise RuntimeError(f"could not load engine {engine_path}: {'; '.join(self._logger.errors)}. "
                                   f"Rebuild it here: `{rebuild_command(engine_path, self.meta)}`")
            self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode = {n: self._engine.get_tensor_mode(n) for n in names}
        self.input_name = next(n for n in names if mode[n] == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if mode[n] == trt.TensorIOMode.OUTPUT)
        self.min_shape, self.opt_shape, self.max_shape = (
            tuple(d) for d in self._engine.get_tensor_profile_shape(self.input_name, 0))
        self.profile = EngineProfile(self.min_shape[0], self.opt_shape[0], self.max_shape[0], tuple(self.min_shape[2:]),
                                     tuple(self.opt_shape[2:]), tuple(self.max_shape[2:]))
        # FP16/INT8 ONNX files keep float32 I/O; a half-precision I/O engine works too.
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        io = [self._engine.get_tensor_dtype(n) for n in (self.input_name, self.output_name)]
        if not all(dt in dtypes for dt in io):
            raise RuntimeError(f"engine I/O types {io} are not supported (expected float32 or float16)")
        self._in_dtype, self._out_dtype = (dtypes[dt] for dt in io)
        self._buffers: dict[str, Any] = {}  # flat, per direction; grow to the largest shape seen

    def _buffer(self, which: str, shape: tuple[int, ...], dtype):
        import torch

        numel = math.prod(shape)
        buf = self._buffers.get(which)
        if buf is None or buf.numel() < numel:
            buf = self._buffers[which] = torch.empty(numel, dtype=dtype, device=self.device)
        return buf[:numel].view(shape)

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        if x.dim() != 4 or x.shape[1] != self.min_shape[1]:
            raise ValueError(f"expected a (B, {self.min_shape[1]}, H, W) tensor, got {tuple(x.shape)}")
        h, w = x.shape[2:]
        pad_h, pad_w = profile_padding(h, w, self.profile)  # raises above the profile's max
        if pad_h or pad_w:  # edge padding, as the model pads to its alignment itself
            x = F.pad(x.float(), (0, pad_w, 0, pad_h), mode="replicate")
        outs = [self._run(chunk) for chunk in x.split(self.max_shape[0])]
        y = outs[0] if len(outs) == 1 else torch.cat(outs)
        return y[:, :, :h, :w]

    def _run(self, x):
        import torch

        shape = tuple(x.shape)
        ctx = self._context
        if not ctx.set_input_shape(self.input_name, shape):
            raise RuntimeError(f"TensorRT rejected input shape {shape}")
        out = self._buffer("out", tuple(ctx.get_tensor_shape(self.output_name)), self._out_dtype)
        inp = self._buffer("in", shape, self._in_dtype)
        if not (ctx.set_tensor_address(self.input_name, inp.data_ptr())
                and ctx.set_tensor_address(self.output_name, out.data_ptr())):
            raise RuntimeError(f"TensorRT refused the I/O buffers: {'; '.join(self._logger.errors[-3:])}")
        # x may still be being written on torch's current stream: make our stream wait for it.
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            inp.copy_(x, non_blocking=True)
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed: {'; '.join(self._logger.errors[-3:])}")
        self._stream.synchronize()
        # Copied on the caller's stream (its allocator owns the result); the next call's
        # wait_stream keeps our stream from overwriting `out` before this copy has run.
        return out.to(torch.float32, copy=True)
