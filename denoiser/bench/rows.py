"""Bench rows: each in its own Python process, timed in turns; and the machine they ran on.

Used by `denoiser bench` (bench.speed: backend x precision) and `--compare` (bench.modes:
quality modes and peers). A row is the median of `repeat` timed runs after `warmup` untimed
ones. Each row runs in its own Python process, so its memory is its own; the rows of one size
are loaded side by side and run in turns (one image each, round after round, never two at
once), so that load from anything else on a shared machine drifts onto every row alike and the
ratios stay fair. Memory is the kernel's peak-RSS mark (VmHWM), reset once the model is loaded
(writing 5 to /proc/self/clear_refs) so that importing torch, whose own transient peak is
higher than a tile's working set, does not hide it: `peak_rss_mb` is the whole process at its
peak while denoising (Python, libraries, weights, buffers), and `work_rss_mb` the rise over its
RSS when loaded (what denoising that size needs). Where the mark cannot be reset, ru_maxrss
stands in (and says so). GPU rows add torch's peak reserved memory plus, for engines,
TensorRT's own activation memory.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from denoiser.bench.peers import PEERS


def machine() -> dict:
    """CPU model, cores and threads (from /proc/cpuinfo and the scheduler), GPU, versions."""
    import onnxruntime
    import torch

    cpu, cores = platform.processor() or platform.machine(), set()
    try:
        phys = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = (s.strip() for s in line.partition(":"))
            if key == "model name":
                cpu = val
            elif key == "physical id":
                phys = val
            elif key == "core id":
                cores.add((phys, val))
    except OSError:
        pass
    info = {"cpu": cpu, "cores": len(cores) or os.cpu_count(), "threads": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    try:
        from denoiser.deploy.tensorrt import import_tensorrt

        trt, flavour = import_tensorrt()
        info["tensorrt"] = f"{flavour} {trt.__version__}"
    except RuntimeError:
        pass
    return info


def _amp(backend):
    """PyTorch on CUDA under float16 autocast (what `torch.autocast` gives a user for free)."""
    import torch

    class Amp:
        name, precision = "torch", "amp"

        def __call__(self, x: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                y = backend.model(torch.from_numpy(x).to(backend.device))
            return y.float().cpu().numpy()

        def describe(self) -> str:
            return f"PyTorch AMP (float16 autocast) on {backend.device}"

    return Amp()


def _rss_kb() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) of this process, in KB."""
    status = Path("/proc/self/status").read_text()
    field = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in status.splitlines())
             if k in ("VmRSS", "VmHWM")}
    return field["VmRSS"], field["VmHWM"]


def _reset_peak_rss() -> str:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "VmHWM reset after loading"
    except OSError:
        return "ru_maxrss (could not reset the peak mark)"


def serve_row(spec: dict) -> None:
    """One row's process: load, then obey the parent line by line on stdin ("run": denoise
    once and print the seconds; "report": print the row as JSON and stop)."""
    import resource

    import torch

    from denoiser.run.inference import Denoiser

    threads = spec["threads"]
    torch.set_num_threads(threads)
    kind, path = spec["backend"], spec["artifact"]
    device = "cuda" if spec["device"] == "cuda" else "cpu"
    if kind in PEERS:  # bench.modes: the other denoisers
        from denoiser.bench.peers import peer_row

        dn = peer_row(spec)
    elif spec.get("quality"):  # bench.modes: ours in a quality mode, as a user loads it
        dn = Denoiser.load(path, quality=spec["quality"], threads=threads)
    elif kind == "torch":
        dn = Denoiser.load(path, backend="torch", device=device, tile=spec["tile"], threads=threads)
        if spec["precision"] == "amp":
            dn.backend = _amp(dn.backend)
    else:
        dn = Denoiser.load(path, backend=kind, tile=spec["tile"], threads=threads)
    w, h = (int(v) for v in spec["size"].split("x"))
    image = np.random.default_rng(0).random((h, w, dn.info.channels), dtype=np.float32)

    cuda = device == "cuda" or kind == "tensorrt"
    how = _reset_peak_rss()
    loaded_kb = _rss_kb()[0]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    print("ready", flush=True)
    for command in sys.stdin:
        if command.strip() == "run":
            t = time.perf_counter()
            dn.denoise_array(image)
            if cuda:
                torch.cuda.synchronize()
            print(time.perf_counter() - t, flush=True)
            continue
        peak_kb = _rss_kb()[1] if how.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row = {"ran": dn.describe(), "peak_rss_mb": round(peak_kb / 1024), "margin": getattr(dn, "margin", 0),
               "work_rss_mb": round((peak_kb - loaded_kb) / 1024), "memory": how, "tile": dn.tile,
               "tile_batch": dn.tile_batch}
        if cuda:
            gpu = torch.cuda.max_memory_reserved()
            engine = getattr(getattr(dn.backend, "runner", None), "_engine", None)
            if engine is not None:
                gpu += int(getattr(engine, "device_memory_size_v2", 0) or getattr(engine, "device_memory_size", 0))
            row["gpu_peak_mb"] = round(gpu / 2**20)
        print(json.dumps(row), flush=True)
        return


class _RowProcess:
    """A row in its own Python process (so its memory is its own), driven over pipes."""

    CODE = "import json, sys; from denoiser.bench.rows import serve_row; serve_row(json.loads(sys.argv[1]))"

    def __init__(self, spec: dict, errors: Path):
        self.spec, self.times, self.error = spec, [], None
        self._errors = open(errors, "w+")  # a file, not a pipe: warnings must never block the child
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._errors, text=True)

    def _ask(self, command: str | None) -> str:
        if self.error:
            return ""
        try:
            if command:
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:  # the child died: its last stderr line says why
            self.proc.wait()
            self._errors.seek(0)
            self.error = (self._errors.read().strip().splitlines() or [f"exit code {self.proc.returncode}"])[-1]
        return line

    def ready(self) -> None:
        self._ask(None)

    def run(self, timed: bool) -> None:
        line = self._ask("run")
        if line and timed:
            self.times.append(float(line))

    def report(self) -> dict:
        base = {k: self.spec[k] for k in ("backend", "precision", "size", "device") if k in self.spec}
        base.update({k: self.spec[k] for k in ("quality",) if self.spec.get(k)})
        line = self._ask("report")
        self.proc.wait()
        self._errors.close()
        if self.error:
            return {**base, "error": self.error}
        w, h = (int(v) for v in self.spec["size"].split("x"))
        ms = 1000 * float(np.median(self.times))
        return {**base, "ms": round(ms, 1), "ms_min": round(1000 * min(self.times), 1),
                "mp_per_s": round(w * h / 1e6 / (ms / 1000), 3), "runs": len(self.times), **json.loads(line)}


def run_rows(specs: list[dict], warmup: int, repeat: int, errors_dir: Path, pause: float = 0.5) -> list[dict]:
    """Start every row's process, then time them in turns (row 1, row 2, ..., row 1, ...) so
    that load from anything else on the machine hits all rows alike; rows never overlap.

    `pause` between turns: thread pools (ONNX Runtime's, OpenMP's) spin-wait for a while after
    a run, and on 2 cores a spinning idle row would slow the next row down (measured: PyTorch
    at 512x512 took 622 ms right after ONNX Runtime runs, 530 ms alone).
    """
    procs = [_RowProcess(spec, errors_dir / f"row{i}.stderr") for i, spec in enumerate(specs)]
    for p in procs:
        p.ready()
    for i in range(warmup + repeat):
        for p in procs:
            time.sleep(pause)
            p.run(timed=i >= warmup)
    return [p.report() for p in procs]
