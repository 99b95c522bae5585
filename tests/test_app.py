"""The Gradio page, tested against a live local server with gradio_client."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, REPO

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    from denoiser.ui import build_ui

    demo = build_ui(tiny_checkpoint)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, share=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_denoise_api_returns_the_denoised_image_losslessly(server, tiny_checkpoint):
    from gradio_client import Client, handle_file

    from denoiser.inference import Denoiser

    client = Client(server, verbose=False)
    src = DATA / "noisy_astronaut.png"
    result = client.predict(handle_file(str(src)), 0.5, api_name="/denoise")
    out = np.asarray(Image.open(result))
    expected = np.asarray(Denoiser.load(tiny_checkpoint, backend="torch")(Image.open(src), strength=0.5))
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # PNG: no lossy re-encoding


def test_non_image_gets_a_clear_message(server, tmp_path):
    from gradio_client import Client, handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="Cannot use this file"):
        Client(server, verbose=False).predict(handle_file(str(bad)), 1.0, api_name="/denoise")


def test_app_py_serves_the_page(tiny_checkpoint, tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--model", str(tiny_checkpoint), "--port",
                             str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.status == 200 and b"denoiser" in r.read()
                    return
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read().decode())
                time.sleep(0.5)
        pytest.fail("app.py did not answer within 90 s")
    finally:
        proc.terminate()
        proc.wait(10)


def test_default_model_is_shipped():
    path = Path(REPO / "checkpoints" / "default-color.safetensors")
    assert path.exists(), "the default model must ship in checkpoints/"
