"""Load test of the app, on loopback only: many /denoise callers at once, and hostile batches
beside a small /denoise.

    python scripts/load_test.py                        # the shipped model: 16 calls of 1-2 MP
    python scripts/load_test.py --calls 16 --min-mp 1 --max-mp 2 --batch-images 240 --model M

Starts `app.py` on 127.0.0.1 (a free port) and then:

1. denoise: `--calls` gradio_client callers at once, each with a noisy image of its own size
   between `--min-mp` and `--max-mp`; reports how many succeeded, their latencies, and the
   server's RSS before and its peak during the calls (VmHWM, reset first through
   /proc/PID/clear_refs).
2. hostile: two page sessions each send Batch a zip of `--batch-images` solid 1000x1000 PNGs
   (a few kB each, a megapixel each to denoise). While they run, a small /denoise is timed
   (it was timed alone before). Then both batch callers disconnect, and a third page's
   one-image batch shows the batch slot came free (the first two were cancelled).

Prints one JSON object. tests/app/test_app_load.py runs the same functions at a small scale.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # page_protocol: the page's own requests, shared with the tests


def start_app(model: str | Path, workdir: Path, *extra: str, timeout: float = 300,
              app: Path = ROOT / "app.py") -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_TEMP_DIR": str(workdir / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(workdir / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, str(app), "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--runs-dir", str(workdir / "runs"), *extra],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer: {(workdir / 'app.log').read_text()[-2000:]}")


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset VmHWM to the current RSS (Linux >= 4.0)


def noisy_image(path: Path, megapixels: float, seed: int) -> Path:
    """A noisy photo-like PNG of about `megapixels`, 3:2."""
    rng = np.random.default_rng(seed)
    w = int((megapixels * 1e6 * 1.5) ** 0.5)
    h = int(megapixels * 1e6 / w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 37 + seed) * np.cos(yy / 23)
    img = np.clip(base[..., None] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def solid_zip(path: Path, count: int, side: int = 1000) -> Path:
    one = path.with_suffix(".png")
    Image.new("RGB", (side, side), (90, 120, 150)).save(one)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(count):
            zf.write(one, f"solid_{k:04d}.png")
    return path


def timed_denoise(url: str, image: Path) -> tuple[bool, float, str]:
    from gradio_client import Client, handle_file

    t0 = time.perf_counter()
    try:
        out = Client(url, verbose=False).predict(handle_file(str(image)), 1.0, api_name="/denoise")
        with Image.open(out) as im, Image.open(image) as src:
            ok, why = im.size == src.size, ""
    except Exception as e:  # every caller's failure is counted and shown, not raised
        ok, why = False, str(e)[:200]
    return ok, time.perf_counter() - t0, why


def denoise_load(url: str, pid: int, images: list[Path]) -> dict:
    """All `images` through /denoise at once (one caller each, after one warm-up call)."""
    timed_denoise(url, images[0])  # the model is loaded (and exported) once, outside the measure
    before = status_mb(pid, "VmRSS")
    reset_peak(pid)
    results: list[tuple[bool, float, str]] = []
    threads = [threading.Thread(target=lambda p=p: results.append(timed_denoise(url, p))) for p in images]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = [s for _, s, _ in results]
    return {"calls": len(images), "ok": sum(ok for ok, _, _ in results),
            "errors": [why for ok, _, why in results if not ok][:3],
            "megapixels": [round(Image.open(p).width * Image.open(p).height / 1e6, 2) for p in images],
            "latency_median_s": round(statistics.median(seconds), 2), "latency_max_s": round(max(seconds), 2),
            "wall_s": round(time.perf_counter() - t0, 2), "rss_before_mb": round(before),
            "rss_peak_mb": round(status_mb(pid, "VmHWM"))}


class BatchCaller:
    """A page session whose Batch call is followed in a thread; `leave()` drops the connection,
    as a closed tab or a killed script does."""

    def __init__(self, url: str, upload: Path):
        from page_protocol import PageSession

        self.page = PageSession(url)
        self.page.open_page()
        self.event = self.page.join("batch", [self.page.upload(upload), 1.0, None])
        where = urlparse(url)
        self.conn = http.client.HTTPConnection(where.hostname, where.port, timeout=900)
        self.conn.request("GET", f"/gradio_api/queue/data?session_hash={self.page.session}")
        self.started, self.finished = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._follow, args=(self.conn.getresponse(),), daemon=True)
        self.thread.start()

    def _follow(self, response) -> None:
        try:
            for line in response:
                msg = json.loads(line[5:]) if line.startswith(b"data:") else {}
                if msg.get("event_id") == self.event:
                    {"process_starts": self.started, "process_completed": self.finished}.get(
                        msg.get("msg"), threading.Event()).set()
        except Exception:  # noqa: BLE001 - leave() pulls the socket from under the reader; any error ends it
            pass

    def leave(self) -> None:
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.thread.join(10)


def hostile_probe(url: str, pid: int, hostile_zip: Path, small: Path, idle_window_s: float = 5.0) -> dict:
    """Two batches of `hostile_zip` and a small /denoise beside them; then the batch callers leave,
    a third caller's one-image batch is timed, and the server's CPU use is read over
    `idle_window_s` after it (a batch that ran on without its caller would show there)."""
    from page_protocol import PageSession

    timed_denoise(url, small)  # the model loaded (and exported) once, outside the measure
    ok, alone, _ = timed_denoise(url, small)
    hostile = [BatchCaller(url, hostile_zip) for _ in range(2)]
    if not hostile[0].started.wait(120):
        raise RuntimeError("the first hostile batch did not start")
    time.sleep(1.0)  # let it get going
    ok_loaded, loaded, why = timed_denoise(url, small)
    finished = sum(h.finished.is_set() for h in hostile)
    for h in hostile:
        h.leave()
    t0 = time.perf_counter()
    page = PageSession(url)
    page.open_page()
    after_ok, out = page.call("batch", [page.upload(small), 1.0, None], timeout=900)
    next_batch_s = time.perf_counter() - t0
    time.sleep(1.0)  # what the last batch started settles
    cpu0 = cpu_seconds(pid)
    time.sleep(idle_window_s)
    return {"small_denoise_alone_s": round(alone, 2), "small_denoise_beside_batches_s": round(loaded, 2),
            "small_denoise_ok": ok and ok_loaded, "small_denoise_error": why,
            "batches_finished_before_it": finished,
            "next_batch_after_callers_left_s": round(next_batch_s, 2),
            "next_batch_summary": out["data"][2] if after_ok else str(out.get("error")),
            "server_cpu_after_callers_left": round((cpu_seconds(pid) - cpu0) / idle_window_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint or .onnx (default: the shipped default model)")
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--min-mp", type=float, default=1.0)
    ap.add_argument("--max-mp", type=float, default=2.0)
    ap.add_argument("--batch-images", type=int, default=240, help="solid 1000x1000 PNGs in each hostile zip")
    ap.add_argument("--skip-hostile", action="store_true", help="only the concurrent /denoise part")
    ap.add_argument("--app", type=Path, default=ROOT / "app.py",
                    help="the app.py to start, e.g. another checkout's for a before/after (with --skip-hostile "
                         "where it predates page sessions)")
    args = ap.parse_args()
    if not 0 < args.min_mp <= args.max_mp or args.calls < 1:
        ap.error("need 0 < --min-mp <= --max-mp and --calls >= 1")
    from denoiser.run.inference import default_model_path

    model = args.model or default_model_path()
    with tempfile.TemporaryDirectory(prefix="denoiser-load-") as tmp:
        work = Path(tmp)
        sizes = np.linspace(args.min_mp, args.max_mp, args.calls)
        images = [noisy_image(work / f"in_{k:02d}.png", mp, k) for k, mp in enumerate(sizes)]
        proc, url = start_app(model, work, app=args.app.resolve())
        try:
            report = {"model": Path(model).name, "denoise": denoise_load(url, proc.pid, images)}
            if not args.skip_hostile:
                small = noisy_image(work / "small.png", 0.06, 99)
                report["hostile"] = hostile_probe(url, proc.pid, solid_zip(work / "hostile.zip", args.batch_images),
                                                  small)
            report["rss_peak_overall_mb"] = round(status_mb(proc.pid, "VmHWM"))
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
