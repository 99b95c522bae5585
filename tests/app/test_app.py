"""The Gradio page, tested against a live local server with gradio_client and plain HTTP:
the public denoise API, clear messages for bad uploads, the queue under concurrent callers,
and what the server does (and does not) hand out."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DATA, REPO
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
UPLOAD_LIMIT_MB = 4  # small, so the oversized-upload test needs no big file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tiny_checkpoint, tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    from denoiser.app.page import build_ui, launch_options

    runs, root = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("data-root")
    demo = build_ui(tiny_checkpoint, runs_dir=runs, data_root=root)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(UPLOAD_LIMIT_MB))
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", demo=demo, runs=runs)
    demo.close()


def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def expected(checkpoint, image: Image.Image, strength: float) -> np.ndarray:
    from denoiser.run.inference import Denoiser

    # what the app runs (backend auto: on a CPU the INT8 export where its check passed)
    return np.asarray(Denoiser.load(checkpoint)(image, strength=strength))


def test_denoise_api_returns_the_denoised_image_losslessly(app, tiny_checkpoint):
    from gradio_client import handle_file

    src = DATA / "noisy_astronaut.png"
    result = client(app).predict(handle_file(str(src)), 0.5, api_name="/denoise")
    out = np.asarray(Image.open(result))
    want = expected(tiny_checkpoint, Image.open(src), 0.5)
    assert out.shape == want.shape
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1  # PNG: no lossy re-encoding


def test_api_takes_image_and_strength_only(app):
    info = client(app).view_api(return_format="dict", print_info=False)
    assert list(info["named_endpoints"]) == ["/denoise"]  # every other event is private
    params = info["named_endpoints"]["/denoise"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["image", "strength"]
    assert len(info["named_endpoints"]["/denoise"]["returns"]) == 1


def test_16bit_upload_comes_back_16bit(app, tiny_checkpoint, tmp_path):
    from gradio_client import handle_file

    gray = (np.asarray(Image.open(DATA / "camera.png"), dtype=np.uint16) * 257)[:64, :96]
    Image.fromarray(gray).save(tmp_path / "deep.png")
    result = Image.open(client(app).predict(handle_file(str(tmp_path / "deep.png")), 1.0, api_name="/denoise"))
    assert result.mode == "I;16"
    want = expected(tiny_checkpoint, Image.open(tmp_path / "deep.png"), 1.0)
    assert np.abs(np.asarray(result).astype(int) - want.astype(int)).max() <= 1


def test_non_image_gets_a_clear_message(app, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="Cannot use this file: not a readable image") as err:
        client(app).predict(handle_file(str(bad)), 1.0, api_name="/denoise")
    assert "Traceback" not in str(err.value) and str(tmp_path) not in str(err.value)  # no server paths


def test_too_many_pixels_gets_a_clear_message(app, tmp_path):
    from gradio_client import handle_file

    from denoiser.app.denoise_tab import MAX_PIXELS

    side = int(MAX_PIXELS**0.5) + 8
    Image.new("L", (side, side)).save(tmp_path / "huge.png")  # compresses to a few kB: passes the size limit
    with pytest.raises(Exception, match=rf"Cannot use this file: {side}x{side} .*over the"):
        client(app).predict(handle_file(str(tmp_path / "huge.png")), 1.0, api_name="/denoise")


def test_oversized_upload_is_refused_with_a_clear_message(app, tmp_path):
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom((UPLOAD_LIMIT_MB + 1) << 20))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client(app).predict(handle_file(str(big)), 1.0, api_name="/denoise")
    # The client checks first; the server enforces it too, for anyone who skips that check.
    boundary = "denoiser-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + big.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(app.url + "gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 413 and b"maximum" in err.value.read().lower()


def test_concurrent_clients_all_get_their_result_within_the_queue_limit(app, tiny_checkpoint, tmp_path,
                                                                       monkeypatch):
    """What this proves: N simultaneous API callers all get correct results within the
    DENOISE_CONCURRENCY slots, and batches have a group of their own (so they never hold a
    denoise slot; tests/app/test_app_load.py shows that under load). The running count is read
    by wrapping the real `Denoiser.denoise_array` (the server runs in this process); it shows
    the limit is never exceeded, not that it is always reached."""
    from gradio_client import handle_file

    from denoiser.app.page import BATCH_CONCURRENCY, DENOISE_CONCURRENCY, QUEUE_SIZE
    from denoiser.run.inference import Denoiser

    groups = {fn.name: (fn.concurrency_id, fn.concurrency_limit) for fn in app.demo.fns.values()}
    assert groups["denoise"] == ("denoise", DENOISE_CONCURRENCY)
    assert groups["batch"] == ("batch", BATCH_CONCURRENCY)
    assert app.demo._queue.max_size == QUEUE_SIZE

    running, peak, lock = 0, 0, threading.Lock()
    real = Denoiser.denoise_array

    def counted(self, *args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real(self, *args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(Denoiser, "denoise_array", counted)
    img = Image.open(DATA / "noisy_astronaut.png").resize((640, 640))  # enough work for calls to overlap
    img.save(tmp_path / "in.png")
    want = expected(tiny_checkpoint, img, 1.0)
    results, errors = [], []

    def call():
        try:
            results.append(client(app).predict(handle_file(str(tmp_path / "in.png")), 1.0, api_name="/denoise"))
        except Exception as e:  # collected: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3 * DENOISE_CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(results) == len(threads)
    for r in results:
        assert np.abs(np.asarray(Image.open(r)).astype(int) - want.astype(int)).max() <= 1
    print(f"at most {peak} denoise calls ran at once (limit {DENOISE_CONCURRENCY})")
    assert 1 <= peak <= DENOISE_CONCURRENCY


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_only_the_apps_own_files_are_served(app, tiny_checkpoint):
    file_url = app.url + "gradio_api/file="
    assert get(file_url + str(DATA / "astronaut.png"))[0] == 200  # the samples the Examples show
    for private in (REPO / "app.py", REPO / "denoiser" / "ui.py", REPO / "pyproject.toml", Path(tiny_checkpoint),
                    Path("/etc/passwd"), Path(os.environ["GRADIO_TEMP_DIR"]).parent / "x" / ".." / ".." / "etc"):
        assert get(file_url + str(private))[0] in (403, 404), private


def test_page_needs_no_internet(app):
    status, html = get(app.url)
    assert status == 200 and b"denoiser" in html
    outside = [u for u in re.findall(rb"""(?:src|href)=["'](https?://[^"']+)""", html)
               if not u.startswith(b"http://127.0.0.1")]
    assert outside == []  # no CDN scripts, fonts or styles
    assert app.demo.config["analytics_enabled"] is False
    assert app.demo.share is False


def test_app_py_serves_the_page(tiny_checkpoint, tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--model", str(tiny_checkpoint), "--port",
                             str(port), "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.status == 200 and b"denoiser" in r.read()
                    return
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read().decode())
                time.sleep(0.5)
        pytest.fail("app.py did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(10)


def test_auth_file_makes_the_app_ask_for_a_login(tiny_checkpoint, tmp_path):
    from denoiser.app.page import read_auth_file

    bad = tmp_path / "bad.txt"
    bad.write_text("# no colon here\nalice\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected user:password"):
        read_auth_file(bad)
    r = subprocess.run([sys.executable, str(REPO / "app.py"), "--auth-file", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "--auth-file" in r.stderr and "expected user:password" in r.stderr

    auth = tmp_path / "users.txt"
    auth.write_text("# who may use the page\nalice:s3cret:with-colon\n\nbob:pw\n")
    assert read_auth_file(auth) == [("alice", "s3cret:with-colon"), ("bob", "pw")]
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--model", str(tiny_checkpoint), "--port",
                             str(port), "--runs-dir", str(tmp_path / "runs"), "--auth-file", str(auth)],
                            cwd=tmp_path, env={**os.environ, "GRADIO_TEMP_DIR": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/config", timeout=2)
                pytest.fail("/config answered without a login")
            except urllib.error.HTTPError as e:
                assert e.code == 401
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read().decode())
                if time.time() > deadline:
                    pytest.fail("app.py did not answer within 120 s")
                time.sleep(0.5)
        jar = urllib.request.HTTPCookieProcessor()
        opener = urllib.request.build_opener(jar)
        form = urllib.parse.urlencode({"username": "bob", "password": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError):
            opener.open(base + "/login", form, timeout=10)
        form = urllib.parse.urlencode({"username": "alice", "password": "s3cret:with-colon"}).encode()
        opener.open(base + "/login", form, timeout=10)
        with opener.open(base + "/config", timeout=10) as r:
            assert r.status == 200 and b"denoise" in r.read()
    finally:
        proc.terminate()
        proc.wait(10)


def test_default_model_is_shipped():
    path = Path(REPO / "checkpoints" / "default-color.safetensors")
    assert path.exists(), "the default model must ship in checkpoints/"
